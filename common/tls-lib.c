/* SPDX-License-Identifier: MIT */
#include <dlfcn.h>
#include <errno.h>

#include "common/log.h"
#include "common/tls-lib.h"

/* The soname of GnuTLS 3.x; the headers we build against must be of that series. */
#if GNUTLS_VERSION_MAJOR != 3
#error "tls-lib.c knows the soname of GnuTLS 3 only"
#endif
#define TLS_LIB_SONAME "libgnutls.so.30"

#define TLS_LIB_DEFINE(name) typeof(name) *sym_##name;
TLS_LIB_SYMBOLS(TLS_LIB_DEFINE)
#undef TLS_LIB_DEFINE

static int tls_lib_state;     /* 0: not tried, 1: loaded, negative: failed */

int tls_lib_load(void) {
        void *dl;

        if (tls_lib_state != 0)
                return tls_lib_state > 0 ? 0 : tls_lib_state;

        dl = dlopen(TLS_LIB_SONAME, RTLD_NOW | RTLD_NODELETE);
        if (!dl) {
                log_error("Cannot load %s, TLS is not available: %s", TLS_LIB_SONAME, dlerror());
                return (tls_lib_state = -EOPNOTSUPP);
        }
#define TLS_LIB_RESOLVE(name)                                                                      \
        sym_##name = (typeof(name) *) dlsym(dl, #name);                                             \
        if (!sym_##name) {                                                                         \
                log_error("%s lacks %s, TLS is not available.", TLS_LIB_SONAME, #name);              \
                return (tls_lib_state = -EOPNOTSUPP);                                              \
        }
        TLS_LIB_SYMBOLS(TLS_LIB_RESOLVE)
#undef TLS_LIB_RESOLVE
        tls_lib_state = 1;
        return 0;
}
