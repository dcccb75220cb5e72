/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>

#include "common/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        QueueFile *f = NULL;

        if (queue_file_parse_buffer(data, size, &f) == 0) {
                assert(f);
                assert(f->content_offset >= 0 && (uint64_t) f->content_offset + f->content_size <= size);
                for (size_t i = 0; i < f->n_recipients; i++)
                        assert(f->recipients[i].status_offset < (off_t) size);
                queue_file_free(f);
        } else
                assert(!f);
        return 0;
}
