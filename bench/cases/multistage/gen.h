/* Macros that expand one line into 100 or 1,000 small functions, so each compile stage does real work. */
#include <stdio.h>

#define FN(p, n)                                                                  \
    static unsigned p##n(unsigned x) {                                            \
        unsigned y = x * 2654435761u + (unsigned)(n);                             \
        for (unsigned i = 0; i < (unsigned)(n) % 7u + 3u; i++)                    \
            y = (y << 5) ^ (y >> 3) ^ i;                                          \
        return y;                                                                 \
    }
#define CALL(p, n) acc = p##n(acc);

#define X10(M, p, b) M(p, b##0) M(p, b##1) M(p, b##2) M(p, b##3) M(p, b##4) \
                     M(p, b##5) M(p, b##6) M(p, b##7) M(p, b##8) M(p, b##9)
#define X100(M, p, b) X10(M, p, b##0) X10(M, p, b##1) X10(M, p, b##2) X10(M, p, b##3) X10(M, p, b##4) \
                      X10(M, p, b##5) X10(M, p, b##6) X10(M, p, b##7) X10(M, p, b##8) X10(M, p, b##9)
#define X1000(M, p, b) X100(M, p, b##0) X100(M, p, b##1) X100(M, p, b##2) X100(M, p, b##3) X100(M, p, b##4) \
                       X100(M, p, b##5) X100(M, p, b##6) X100(M, p, b##7) X100(M, p, b##8) X100(M, p, b##9)
