/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "services/local/mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The obvious line-by-line mboxo quoting, as the reference for the streaming writer. */
static size_t reference(const uint8_t *in, size_t n, uint8_t *out) {
        size_t o = 0;
        for (size_t i = 0; i < n;) {
                if (n - i >= 5 && memcmp(in + i, "From ", 5) == 0)
                        out[o++] = '>';
                while (i < n) {
                        out[o++] = in[i];
                        if (in[i++] == '\n')
                                break;
                }
        }
        if (n > 0 && in[n - 1] != '\n')
                out[o++] = '\n';
        out[o++] = '\n';
        return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static MboxWriter w;
        if (size < 1 || size > 65536)
                return 0;
        /* The first byte chooses how the content is cut into write calls. */
        size_t step = (size_t) data[0] + 1;
        data++;
        size--;

        int fd = memfd_create("fuzz-mbox", MFD_CLOEXEC);
        assert(fd >= 0);
        mbox_writer_init(&w, fd, MBOX_QUOTE_FROM | MBOX_BLANK_LINE);
        for (size_t i = 0; i < size; i += step)
                assert(mbox_writer_body(&w, data + i, size - i < step ? size - i : step) == 0);
        assert(mbox_writer_finish(&w) == 0);

        uint8_t *want = malloc(size * 2 + 2), *got = malloc(size * 2 + 2);
        assert(want && got);
        size_t wn = reference(data, size, want);
        ssize_t gn = pread(fd, got, size * 2 + 2, 0);
        assert(gn >= 0 && (size_t) gn == wn && w.bytes == wn);
        assert(memcmp(want, got, wn) == 0);
        free(want);
        free(got);
        close(fd);

        /* The loop check reads the same bytes as a message header. */
        fd = memfd_create("fuzz-mbox-header", MFD_CLOEXEC);
        assert(fd >= 0);
        assert(write(fd, data, size) == (ssize_t) size);
        int r = mbox_has_delivered_to(fd, 0, size, "user@example.test");
        assert(r == 0 || r == 1);
        close(fd);
        return 0;
}
