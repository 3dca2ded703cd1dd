/* The application the apt case compiles. */
#include <stdio.h>

int main(void) {
    puts("hello from the apt case");
    return 0;
}
