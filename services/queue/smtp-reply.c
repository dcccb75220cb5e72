/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/strv.h"
#include "services/queue/smtp-reply.h"

void smtp_reply_init(SmtpReply *r) {
        *r = (SmtpReply) {};
}

void smtp_reply_done(SmtpReply *r) {
        strv_free(r->lines);
        smtp_reply_init(r);
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

size_t smtp_dsn_parse(const char *s, size_t len, char expected_class, char ret[static SMTP_DSN_MAX]) {
        size_t p = 0;

        /* class "2", "4" or "5", then ".subject.detail" with 1-3 digits each */
        if (len < 5 || !(s[0] == '2' || s[0] == '4' || s[0] == '5') || s[1] != '.')
                return 0;
        if (expected_class != 0 && s[0] != expected_class)
                return 0;
        p = 2;
        for (int part = 0; part < 2; part++) {
                size_t d = 0;
                while (p < len && is_digit(s[p]) && d < 4) {
                        p++;
                        d++;
                }
                if (d == 0 || d > 3)
                        return 0;
                if (part == 0) {
                        if (p >= len || s[p] != '.')
                                return 0;
                        p++;
                }
        }
        /* The code must end the text or be followed by white space. */
        if (p < len && s[p] != ' ' && s[p] != '\t')
                return 0;
        memcpy(ret, s, p);
        ret[p] = 0;
        return p;
}

static void sanitize_copy(char *dst, size_t size, const char *src, size_t len) {
        size_t n = len < size - 1 ? len : size - 1;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) src[i];
                dst[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char) c;
        }
        dst[n] = 0;
}

int smtp_reply_feed(SmtpReply *r, const char *line, size_t len) {
        int code;
        bool last;

        if (r->done)
                return -EINVAL;
        /* Tolerate a stray CR that the line reader left. */
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]))
                return -EBADMSG;
        if (line[0] < '2' || line[0] > '5')
                return -EBADMSG;
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (len == 3)
                last = true;
        else if (line[3] == ' ')
                last = true;
        else if (line[3] == '-')
                last = false;
        else
                return -EBADMSG;

        if (r->n_lines == 0)
                r->code = code;
        else if (r->code != code)
                return -EBADMSG;
        if (r->n_lines >= SMTP_REPLY_LINES_MAX)
                return -E2BIG;

        const char *t = len > 4 ? line + 4 : "";
        size_t tlen = len > 4 ? len - 4 : 0;
        char dsn[SMTP_DSN_MAX];
        size_t d = smtp_dsn_parse(t, tlen, line[0], dsn);

        char clean[SMTP_REPLY_TEXT_MAX];
        sanitize_copy(clean, sizeof clean, t, tlen);
        if (strv_extend(&r->lines, clean) < 0)
                return -ENOMEM;

        if (r->n_lines == 0) {
                memcpy(r->first, clean, strlen(clean) + 1);
                if (d > 0)
                        memcpy(r->dsn, dsn, strlen(dsn) + 1);
        }
        r->n_lines++;

        /* Text without the enhanced code, joined with single spaces. */
        const char *body = t + d;
        size_t blen = tlen - d;
        while (blen > 0 && (*body == ' ' || *body == '\t')) {
                body++;
                blen--;
        }
        size_t cur = strlen(r->text);
        if (cur > 0 && cur + 1 < sizeof r->text && blen > 0) {
                r->text[cur++] = ' ';
                r->text[cur] = 0;
        }
        if (cur + 1 < sizeof r->text)
                sanitize_copy(r->text + cur, sizeof r->text - cur, body, blen);

        if (last)
                r->done = true;
        return last ? 1 : 0;
}

int smtp_reply_format(const SmtpReply *r, char *buf, size_t size) {
        int n;
        if (r->dsn[0])
                n = snprintf(buf, size, "%03d %s %s", r->code, r->dsn, r->text);
        else
                n = snprintf(buf, size, "%03d %s", r->code, r->text);
        if (n < 0)
                return -EINVAL;
        /* Trailing space when the text is empty. */
        size_t l = strlen(buf);
        while (l > 0 && buf[l - 1] == ' ')
                buf[--l] = 0;
        return 0;
}
