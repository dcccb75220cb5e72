/* SPDX-License-Identifier: MIT */
/*
 * An LD_PRELOAD shim for test_lifecycle.py: from the Nth call on (MTA_TEST_SYNCFS_FAIL_FROM),
 * syncfs() fails with EIO, as a write-back error would make it. Nothing on these machines makes a real
 * disk fail on demand (no device-mapper error target), and this is the only way to reach the
 * committer's error path.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int syncfs(int fd) {
        static int calls;
        int (*real)(int) = (int (*)(int)) dlsym(RTLD_NEXT, "syncfs");
        const char *from = getenv("MTA_TEST_SYNCFS_FAIL_FROM");
        int n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);

        if (from && n >= atoi(from)) {
                errno = EIO;
                return -1;
        }
        if (!real) {
                errno = ENOSYS;
                return -1;
        }
        return real(fd);
}
