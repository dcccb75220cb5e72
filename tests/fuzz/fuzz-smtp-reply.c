/* SPDX-License-Identifier: MIT */
/* The SMTP client's reply parser on hostile server output, one line per '\n'. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "services/queue/smtp-reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SmtpReply r;
        const char *p = (const char *) data, *end = p + size;

        smtp_reply_init(&r);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                int k = smtp_reply_feed(&r, p, n);
                if (k != 0) {
                        if (k > 0) {
                                char buf[SMTP_REPLY_TEXT_MAX + 64];
                                assert(r.code >= 200 && r.code <= 599);
                                assert(strlen(r.text) < SMTP_REPLY_TEXT_MAX);
                                (void) smtp_reply_format(&r, buf, sizeof buf);
                        }
                        smtp_reply_done(&r);
                        smtp_reply_init(&r);
                }
                p += n + (nl ? 1 : 0);
        }
        smtp_reply_done(&r);
        return 0;
}
