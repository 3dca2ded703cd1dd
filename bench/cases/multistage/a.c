/* Compile stage a: 300 generated functions chained together (about 2 s of gcc -O2). */
#include "gen.h"

X100(FN, a, 1)
X100(FN, a, 2)
X100(FN, a, 3)

int main(void) {
    unsigned acc = 1u;
    X100(CALL, a, 1)
    X100(CALL, a, 2)
    X100(CALL, a, 3)
    printf("stage a: %u\n", acc);
    return 0;
}
