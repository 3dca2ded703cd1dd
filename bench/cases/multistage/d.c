/* Compile stage d: 300 generated functions chained together (about 2 s of gcc -O2). */
#include "gen.h"

X100(FN, d, 10)
X100(FN, d, 11)
X100(FN, d, 12)

int main(void) {
    unsigned acc = 4u;
    X100(CALL, d, 10)
    X100(CALL, d, 11)
    X100(CALL, d, 12)
    printf("stage d: %u\n", acc);
    return 0;
}
