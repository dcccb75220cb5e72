/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *s = strndup((const char *) data, size);   /* stops at a NUL, as a command line would */
        assert(s);

        char *addr = NULL;
        const char *params = NULL;
        if (address_parse_path(s, &addr, &params) == 0) {
                assert(addr && params);
                assert(strlen(addr) <= 254);
                char *local = NULL, *domain = NULL;
                if (address_split(addr, &local, &domain) == 0) {
                        char *joined = NULL, *base = NULL, *ext = NULL;
                        if (address_join(local, domain, &joined) == 0)
                                free(joined);
                        if (address_split_extension(local, "+-", &base, &ext) == 0) {
                                free(base);
                                free(ext);
                        }
                        (void) address_domain_is_literal(domain);
                        free(local);
                        free(domain);
                }
                free(addr);
        }
        free(s);
        return 0;
}
