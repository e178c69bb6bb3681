/* What the ThetaNet module does at start-up, without Unreal: load the staged shared
 * library from the plugin's Binaries by path (FPlatformProcess::GetDllHandle is dlopen on
 * Linux), then refuse it unless it speaks the ABI of the header the plugin was built with.
 * Usage: load_test PATH. Prints "abi N" and exits 0, or says what failed. */
#include <dlfcn.h>
#include <stdio.h>

#include "theta.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: load_test PATH\n");
        return 2;
    }
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 3;
    }
    uint32_t (*abi_version)(void) = NULL;
    /* POSIX's sanctioned way to turn dlsym's object pointer into a function pointer. */
    *(void **)(&abi_version) = dlsym(library, "theta_abi_version");
    if (abi_version == NULL) {
        fprintf(stderr, "theta_abi_version not exported\n");
        return 4;
    }
    uint32_t abi = abi_version();
    if (abi != THETA_ABI_VERSION) {
        fprintf(stderr, "library ABI %u, header ABI %u\n", (unsigned)abi, (unsigned)THETA_ABI_VERSION);
        return 5;
    }
    printf("abi %u\n", (unsigned)abi);
    dlclose(library);
    return 0;
}
