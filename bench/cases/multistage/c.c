/* Compile stage c: 300 generated functions chained together (about 2 s of gcc -O2). */
#include "gen.h"

X100(FN, c, 7)
X100(FN, c, 8)
X100(FN, c, 9)

int main(void) {
    unsigned acc = 3u;
    X100(CALL, c, 7)
    X100(CALL, c, 8)
    X100(CALL, c, 9)
    printf("stage c: %u\n", acc);
    return 0;
}
