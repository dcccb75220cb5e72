/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Small helpers used everywhere: scope-bound cleanup (the systemd idiom), ownership transfer and
 * array sizes. Nothing here allocates or logs.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

#define TAKE_PTR(p)                             \
        ({                                      \
                typeof(p) _tp = (p);            \
                (p) = NULL;                     \
                _tp;                            \
        })

#define TAKE_FD(fd)                             \
        ({                                      \
                int _tfd = (fd);                \
                (fd) = -EBADF;                  \
                _tfd;                           \
        })

/* Defines foo_freep() for a type whose foo_free() accepts NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        *p = func(*p);                  \
        }

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strcaseeq(a, b) (strcasecmp((a), (b)) == 0)
#define isempty(s) (!(s) || !*(s))

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

/* Returns -errno, never 0, for use right after a failed libc call. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}
