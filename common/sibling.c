/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/sibling.h"

static bool try_path(char *buf, size_t size, const char *dir, const char *rel) {
        int k = snprintf(buf, size, "%s/%s", dir, rel);
        return k > 0 && (size_t) k < size && access(buf, X_OK) == 0;
}

int sibling_find(const char *name, const char *const *relative, char *buf, size_t size) {
        static const char *const install_dirs[] = { MTA_LIBEXECDIR, MTA_SBINDIR, MTA_BINDIR };
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

        if (n > 0) {
                self[n] = 0;
                char *slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        if (try_path(buf, size, self, name))
                                return 0;
                        for (const char *const *r = relative; r && *r; r++)
                                if (try_path(buf, size, self, *r))
                                        return 0;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(install_dirs); i++)
                if (try_path(buf, size, install_dirs[i], name))
                        return 0;
        if (strlen(name) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, name);
        return 0;
}
