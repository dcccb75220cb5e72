/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/alias.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int entry(const char *name, const char *value, unsigned line, void *userdata) {
        AliasTarget *t = NULL;
        size_t n = 0;

        assert(name && value && line > 0);
        if (alias_split_targets(value, &t, &n) == 0)
                alias_targets_free(t, n);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *error = NULL;
        (void) alias_parse_buffer("fuzz", (const char *) data, size, entry, NULL, &error);
        free(error);
        return 0;
}
