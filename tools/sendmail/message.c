/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strv.h"
#include "tools/sendmail/addrlist.h"
#include "tools/sendmail/message.h"

typedef struct HeaderField {
        size_t start;       /* offset in raw */
        size_t len;         /* with the LF of its last line */
        size_t name_len;
        bool removed;
} HeaderField;

struct Message {
        char *raw;          /* normalized input */
        size_t raw_len;
        HeaderField *fields;
        size_t n_fields, n_allocated;
        size_t body_start;
        char *content;      /* after message_finish() */
        size_t content_len;
};

Message *message_free(Message *m) {
        if (!m)
                return NULL;
        free(m->raw);
        free(m->fields);
        free(m->content);
        free(m);
        return NULL;
}

static size_t field_name_len(const char *line, size_t n) {
        size_t i = 0, name_len;

        while (i < n && line[i] > 32 && line[i] < 127 && line[i] != ':')
                i++;
        name_len = i;
        /* RFC 5322's obsolete syntax allows white space before the colon. */
        while (i < n && (line[i] == ' ' || line[i] == '\t'))
                i++;
        if (name_len == 0 || i >= n || line[i] != ':')
                return 0;
        return name_len;
}

static int message_parse(Message *m) {
        size_t pos = 0;

        m->body_start = m->raw_len;
        while (pos < m->raw_len) {
                const char *line = m->raw + pos;
                const char *lf = memchr(line, '\n', m->raw_len - pos);
                size_t n = lf ? (size_t) (lf - line) : m->raw_len - pos;
                size_t next = pos + n + (lf ? 1 : 0);
                size_t name_len;

                if (n == 0) {
                        m->body_start = next;
                        return 0;
                }
                if ((line[0] == ' ' || line[0] == '\t') && m->n_fields > 0) {
                        m->fields[m->n_fields - 1].len += next - pos;
                        pos = next;
                        continue;
                }
                name_len = field_name_len(line, n);
                if (name_len == 0) {
                        m->body_start = pos;
                        return 0;
                }
                if (m->n_fields == m->n_allocated) {
                        size_t a = m->n_allocated ? m->n_allocated * 2 : 16;
                        HeaderField *f = reallocarray(m->fields, a, sizeof *f);
                        if (!f)
                                return -ENOMEM;
                        m->fields = f;
                        m->n_allocated = a;
                }
                m->fields[m->n_fields++] = (HeaderField) {
                        .start = pos,
                        .len = next - pos,
                        .name_len = name_len,
                };
                pos = next;
        }
        return 0;
}

static int buffer_append(char **buf, size_t *len, size_t *allocated, const char *data, size_t n) {
        if (*len + n + 1 > *allocated) {
                size_t a = *allocated ? *allocated : 4096;
                while (a < *len + n + 1)
                        a *= 2;
                char *b = realloc(*buf, a);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *allocated = a;
        }
        memcpy(*buf + *len, data, n);
        *len += n;
        (*buf)[*len] = '\0';
        return 0;
}

int message_read(FILE *f, bool ignore_dots, uint64_t max_size, Message **ret) {
        _cleanup_(message_freep) Message *m = calloc(1, sizeof(Message));
        _cleanup_free_ char *line = NULL;
        size_t line_size = 0, allocated = 0;
        bool first = true;
        int r;

        if (!m)
                return -ENOMEM;

        for (;;) {
                errno = 0;
                ssize_t n = getline(&line, &line_size, f);
                if (n < 0) {
                        if (ferror(f))
                                return errno > 0 ? -errno : -EIO;
                        break;
                }
                size_t l = (size_t) n;
                if (l > 0 && line[l - 1] == '\n')
                        l--;
                if (l > 0 && line[l - 1] == '\r')
                        l--;
                if (first && l >= 5 && memcmp(line, "From ", 5) == 0) {
                        first = false;
                        continue;
                }
                first = false;
                if (!ignore_dots && l == 1 && line[0] == '.')
                        break;
                line[l++] = '\n';
                if (max_size > 0 && m->raw_len + l > max_size)
                        return -EFBIG;
                r = buffer_append(&m->raw, &m->raw_len, &allocated, line, l);
                if (r < 0)
                        return r;
        }
        if (!m->raw) {
                m->raw = strdup("");
                if (!m->raw)
                        return -ENOMEM;
        }
        r = message_parse(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int message_from_buffer(const char *data, size_t len, Message **ret) {
        _cleanup_(message_freep) Message *m = calloc(1, sizeof(Message));
        bool add_lf = len > 0 && data[len - 1] != '\n';
        int r;

        if (!m)
                return -ENOMEM;
        m->raw = malloc(len + 2);
        if (!m->raw)
                return -ENOMEM;
        memcpy(m->raw, data, len);
        if (add_lf)
                m->raw[len++] = '\n';
        m->raw[len] = '\0';
        m->raw_len = len;
        r = message_parse(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

size_t message_n_headers(const Message *m) {
        return m->n_fields;
}

static bool field_is(const Message *m, const HeaderField *f, const char *name) {
        return !f->removed && f->name_len == strlen(name) &&
                strncasecmp(m->raw + f->start, name, f->name_len) == 0;
}

bool message_has_header(const Message *m, const char *name) {
        for (size_t i = 0; i < m->n_fields; i++)
                if (field_is(m, &m->fields[i], name))
                        return true;
        return false;
}

static int field_value(const Message *m, const HeaderField *f, char **ret) {
        const char *s = m->raw + f->start;
        const char *colon = memchr(s, ':', f->len);
        size_t n = f->len - (size_t) (colon + 1 - s), k = 0;
        char *v = malloc(n + 1);

        if (!v)
                return -ENOMEM;
        /* Unfolding is removing the line breaks (RFC 5322 2.2.3). */
        for (const char *p = colon + 1; p < s + f->len; p++)
                if (*p != '\n')
                        v[k++] = *p;
        v[k] = '\0';
        char *t = strstrip(v);
        memmove(v, t, strlen(t) + 1);
        *ret = v;
        return 0;
}

int message_header_value(const Message *m, const char *name, size_t n, char **ret) {
        for (size_t i = 0; i < m->n_fields; i++)
                if (field_is(m, &m->fields[i], name) && n-- == 0)
                        return field_value(m, &m->fields[i], ret);
        return -ENOENT;
}

int message_extract_recipients(const Message *m, char ***list) {
        static const char *const plain[] = { "To", "Cc", "Bcc" };
        static const char *const resent[] = { "Resent-To", "Resent-Cc", "Resent-Bcc" };
        const char *const *names = plain;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(resent); i++)
                if (message_has_header(m, resent[i]))
                        names = resent;

        for (size_t i = 0; i < m->n_fields; i++)
                for (size_t j = 0; j < ELEMENTSOF(plain); j++) {
                        _cleanup_free_ char *v = NULL;

                        if (!field_is(m, &m->fields[i], names[j]))
                                continue;
                        r = field_value(m, &m->fields[i], &v);
                        if (r < 0)
                                return r;
                        r = addrlist_parse(v, list);
                        if (r < 0)
                                return r;
                }
        return 0;
}

int message_format_date(time_t t, char *buf, size_t size) {
        struct tm tm;

        if (!localtime_r(&t, &tm))
                return -EINVAL;
        /* The process never calls setlocale(), so %a and %b are the English names RFC 5322 needs. */
        if (strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
                return -ENOBUFS;
        return 0;
}

int message_format_mailbox(const char *full_name, const char *addr, char **ret) {
        _cleanup_free_ char *name = NULL;
        bool quote = false;
        size_t k = 0;
        char *s;

        if (isempty(full_name)) {
                s = strdup(addr);
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }

        name = malloc(strlen(full_name) * 2 + 1);
        if (!name)
                return -ENOMEM;
        for (const char *p = full_name; *p; p++) {
                unsigned char c = (unsigned char) *p;
                /* A control character (a newline above all) must never reach the header. */
                if (c < 32 || c == 127)
                        c = ' ';
                if (strchr("()<>[]:;@\\,.\"", c))
                        quote = true;
                if (c == '"' || c == '\\')
                        name[k++] = '\\';
                name[k++] = (char) c;
        }
        name[k] = '\0';
        const char *n = strstrip(name);
        if (!*n)
                return message_format_mailbox(NULL, addr, ret);

        if (asprintf(&s, quote ? "\"%s\" <%s>" : "%s <%s>", n, addr) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int message_finish(Message *m, const MessageFinish *info) {
        _cleanup_free_ char *buf = NULL, *from = NULL;
        size_t len = 0, allocated = 0;
        char date[64], *line;
        int r;

        if (m->content)
                return -EALREADY;

        for (size_t i = 0; i < m->n_fields; i++)
                if (field_is(m, &m->fields[i], "Bcc") || field_is(m, &m->fields[i], "Resent-Bcc") ||
                    field_is(m, &m->fields[i], "Return-Path"))
                        m->fields[i].removed = true;

#define APPEND(data, n)                                                         \
        do {                                                                    \
                r = buffer_append(&buf, &len, &allocated, (data), (n));         \
                if (r < 0)                                                      \
                        return r;                                               \
        } while (0)

        if (info->prepend)
                APPEND(info->prepend, strlen(info->prepend));
        for (size_t i = 0; i < m->n_fields; i++)
                if (!m->fields[i].removed)
                        APPEND(m->raw + m->fields[i].start, m->fields[i].len);

        if (!message_has_header(m, "Date")) {
                r = message_format_date(info->date, date, sizeof date);
                if (r < 0)
                        return r;
                APPEND("Date: ", 6);
                APPEND(date, strlen(date));
                APPEND("\n", 1);
        }
        if (!message_has_header(m, "From") && info->from_address) {
                r = message_format_mailbox(info->full_name, info->from_address, &from);
                if (r < 0)
                        return r;
                line = from;
                APPEND("From: ", 6);
                APPEND(line, strlen(line));
                APPEND("\n", 1);
        }
        if (!message_has_header(m, "Message-ID") && info->message_id) {
                APPEND("Message-ID: ", 12);
                APPEND(info->message_id, strlen(info->message_id));
                APPEND("\n", 1);
        }
        APPEND("\n", 1);
        APPEND(m->raw + m->body_start, m->raw_len - m->body_start);
#undef APPEND

        m->content = TAKE_PTR(buf);
        m->content_len = len;
        return 0;
}

const char *message_content(const Message *m, size_t *ret_len) {
        if (ret_len)
                *ret_len = m->content ? m->content_len : 0;
        return m->content;
}

bool message_is_8bit(const Message *m) {
        for (size_t i = 0; m->content && i < m->content_len; i++)
                if ((unsigned char) m->content[i] >= 0x80)
                        return true;
        return false;
}
