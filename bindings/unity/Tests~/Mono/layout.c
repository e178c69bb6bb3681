/* Prints the size of every struct of theta.h and the offset of each field, for the C#
 * test InteropTests.GeneratedStructsHaveTheLayoutOfTheHeader. Generated lines come from
 * scripts/test-unity.sh, which reads the struct definitions out of the header. */
#include <stddef.h>
#include <stdio.h>

#include "theta.h"

int main(void) {
#include "layout.inc"
    return 0;
}
