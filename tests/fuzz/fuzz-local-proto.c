/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/local-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > LOCAL_PROTO_MAX)
                return 0;
        char *a = malloc(size + 1), *b = malloc(size + 1);
        assert(a && b);
        memcpy(a, data, size);
        memcpy(b, data, size);

        LocalRequest req;
        if (local_request_decode(a, size, &req) == 0) {
                /* A decoded request encodes again without error. */
                static char out[LOCAL_PROTO_MAX * 2];
                size_t len;
                assert(local_request_encode(&req, out, sizeof out, &len) == 0);
        }
        LocalReply rep;
        (void) local_reply_decode(b, size, &rep);
        free(a);
        free(b);
        return 0;
}
