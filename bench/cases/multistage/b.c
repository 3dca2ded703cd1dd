/* Compile stage b: 300 generated functions chained together (about 2 s of gcc -O2). */
#include "gen.h"

X100(FN, b, 4)
X100(FN, b, 5)
X100(FN, b, 6)

int main(void) {
    unsigned acc = 2u;
    X100(CALL, b, 4)
    X100(CALL, b, 5)
    X100(CALL, b, 6)
    printf("stage b: %u\n", acc);
    return 0;
}
