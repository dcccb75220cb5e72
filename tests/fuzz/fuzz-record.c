/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "common/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t pos = 0;
        Record r;
        int k;

        while ((k = record_next((const char *) data, size, &pos, &r)) > 0) {
                /* Whatever parses must re-encode to the same bytes. */
                char out[64 + 4096];
                size_t len = 0;
                if (r.len <= 4096) {
                        assert(record_put(out, sizeof out, &len, r.type, r.data, r.len) == 0);
                        assert(memcmp(out + len - r.len - 1, r.data, r.len) == 0);
                }
                assert(pos <= size);
        }
        return 0;
}
