/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/record.h"

int record_put(char *buf, size_t size, size_t *pos, char type, const void *data, size_t len) {
        char head[2 + RECORD_LEN_DIGITS_MAX + 1];
        int h = snprintf(head, sizeof head, "%c%zu:", type, len);
        if (h < 0)
                return -EINVAL;
        if ((size_t) h + len + 1 > size - *pos || *pos > size)
                return -ENOBUFS;
        memcpy(buf + *pos, head, (size_t) h);
        if (len > 0)
                memcpy(buf + *pos + h, data, len);
        buf[*pos + h + len] = '\n';
        *pos += (size_t) h + len + 1;
        return 0;
}

int record_put_string(char *buf, size_t size, size_t *pos, char type, const char *s) {
        if (!s)
                return 0;
        return record_put(buf, size, pos, type, s, strlen(s));
}

int record_put_u64(char *buf, size_t size, size_t *pos, char type, uint64_t v) {
        char num[RECORD_LEN_DIGITS_MAX + 1];
        int n = snprintf(num, sizeof num, "%" PRIu64, v);
        return record_put(buf, size, pos, type, num, (size_t) n);
}

int record_parse_len(const char *s, size_t n, uint64_t *ret) {
        uint64_t v = 0;
        if (n == 0 || n > RECORD_LEN_DIGITS_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                unsigned d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EBADMSG;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int record_next(const char *buf, size_t len, size_t *pos, Record *ret) {
        size_t p = *pos, digits = 0;
        uint64_t n;

        if (p >= len)
                return 0;
        char type = buf[p];
        if (!((type >= 'A' && type <= 'Z') || (type >= 'a' && type <= 'z')))
                return -EBADMSG;
        p++;
        while (p + digits < len && buf[p + digits] != ':' && digits <= RECORD_LEN_DIGITS_MAX)
                digits++;
        if (p + digits >= len || buf[p + digits] != ':')
                return -EBADMSG;
        if (record_parse_len(buf + p, digits, &n) < 0)
                return -EBADMSG;
        p += digits + 1;
        if (n > len - p || len - p - n < 1)
                return -EBADMSG;
        if (buf[p + n] != '\n')
                return -EBADMSG;
        *ret = (Record) { .type = type, .data = buf + p, .len = (size_t) n };
        *pos = p + (size_t) n + 1;
        return 1;
}

int record_parse_u64(const Record *r, uint64_t *ret) {
        return record_parse_len(r->data, r->len, ret);
}
