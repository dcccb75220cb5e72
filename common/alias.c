/* SPDX-License-Identifier: MIT */
/*
 * The aliases(5) parser, and the logical-line reader that the postmap syntax shares with it.
 * Every check happens here, when the map is built, so that a typo is reported with its line
 * instead of becoming a silently wrong alias at delivery time.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alias.h"
#include "common/map-backend.h"
#include "common/strv.h"

static bool is_ws(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

void source_reader_init(SourceReader *s, const char *name, const char *buf, size_t len) {
        *s = (SourceReader) {
                .name = name,
                .buf = buf,
                .len = len,
                .line = 1,
        };
}

void source_reader_done(SourceReader *s) {
        free(s->acc);
        s->acc = NULL;
        s->acc_size = 0;
}

static int acc_append(SourceReader *s, size_t *used, const char *p, size_t n, bool space) {
        size_t need = *used + n + (space ? 1 : 0) + 1;

        if (need > s->acc_size) {
                size_t sz = s->acc_size ? s->acc_size : 256;
                char *a;

                while (sz < need)
                        sz *= 2;
                a = realloc(s->acc, sz);
                if (!a)
                        return -ENOMEM;
                s->acc = a;
                s->acc_size = sz;
        }
        if (space)
                s->acc[(*used)++] = ' ';
        memcpy(s->acc + *used, p, n);
        *used += n;
        s->acc[*used] = 0;
        return 0;
}

int source_reader_next(SourceReader *s, char **ret_text, unsigned *ret_line, char **ret_error) {
        size_t used = 0;
        unsigned first = 0;
        bool have = false;

        while (s->pos < s->len) {
                const char *start = s->buf + s->pos, *end, *a, *b, *nl;
                size_t next;
                int r;

                nl = memchr(start, '\n', s->len - s->pos);
                end = nl ? nl : s->buf + s->len;
                next = (size_t) (end - s->buf) + (nl ? 1 : 0);

                if (memchr(start, 0, (size_t) (end - start)))
                        return error_set(ret_error, -EINVAL, "%s:%u: NUL byte in line", s->name, s->line);

                a = start;
                while (a < end && is_ws(*a))
                        a++;
                b = end;
                while (b > a && is_ws(b[-1]))
                        b--;

                if (a == b || *a == '#') {
                        s->pos = next;
                        s->line++;
                        continue;
                }

                if (a != start) {
                        if (!have)
                                return error_set(ret_error, -EINVAL,
                                                 "%s:%u: continuation line without an entry above it",
                                                 s->name, s->line);
                        r = acc_append(s, &used, a, (size_t) (b - a), true);
                        if (r < 0)
                                return r;
                        s->pos = next;
                        s->line++;
                        continue;
                }

                if (have)
                        break;   /* this line starts the next entry */

                r = acc_append(s, &used, a, (size_t) (b - a), false);
                if (r < 0)
                        return r;
                have = true;
                first = s->line;
                s->pos = next;
                s->line++;
        }

        if (!have)
                return 0;
        *ret_text = s->acc;
        *ret_line = first;
        return 1;
}

int read_source_file(const char *path, char **ret_buf, size_t *ret_len, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, used = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return S_ISDIR(st.st_mode) ? -EISDIR : -EBADFD;

        size = (size_t) st.st_size + 1;
        for (;;) {
                ssize_t n;

                if (used + 1 >= size || !buf) {
                        char *b;
                        if (buf)
                                size *= 2;
                        b = realloc(buf, size);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                n = read(fd, buf + used, size - used - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                used += (size_t) n;
        }
        buf[used] = 0;

        *ret_buf = TAKE_PTR(buf);
        *ret_len = used;
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

void alias_targets_free(AliasTarget *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(t[i].value);
        free(t);
}

/* Removes the quotes and backslash escapes of a quoted string [p, e) that starts with '"'. */
static char *unquote(const char *p, const char *e) {
        char *s = malloc((size_t) (e - p) + 1), *d = s;

        if (!s)
                return NULL;
        for (p++; p < e && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < e)
                        p++;
                *d++ = *p;
        }
        *d = 0;
        return s;
}

static int target_classify(const char *s, size_t n, AliasTarget *t, const char **why) {
        const char *e = s + n;
        char *v;

        if (*s == '|') {
                s++;
                while (s < e && is_ws(*s))
                        s++;
                if (s == e) {
                        *why = "empty command after '|'";
                        return -EINVAL;
                }
                t->kind = ALIAS_TARGET_COMMAND;
        } else if (*s == '/')
                t->kind = ALIAS_TARGET_FILE;
        else if (n >= 9 && strncasecmp(s, ":include:", 9) == 0) {
                s += 9;
                while (s < e && is_ws(*s))
                        s++;
                if (s == e) {
                        *why = "empty path after ':include:'";
                        return -EINVAL;
                }
                if (*s != '/') {
                        *why = "':include:' needs an absolute path";
                        return -EINVAL;
                }
                t->kind = ALIAS_TARGET_INCLUDE;
        } else {
                bool q = false;

                /* A bare word list such as "alice bob" is almost certainly a missing comma: take it
                 * as an error rather than as one strange address. */
                for (const char *p = s; p < e; p++) {
                        if (*p == '\\' && p + 1 < e) {
                                p++;
                                continue;
                        }
                        if (*p == '"')
                                q = !q;
                        else if (!q && is_ws(*p)) {
                                *why = "white space inside an address (missing ','?)";
                                return -EINVAL;
                        }
                }
                t->kind = ALIAS_TARGET_ADDRESS;
        }
        for (const char *p = s; p < e; p++)
                if ((unsigned char) *p < 0x20 && *p != '\t') {
                        *why = "control character in target";
                        return -EINVAL;
                }

        v = strndup(s, (size_t) (e - s));
        if (!v)
                return -ENOMEM;
        t->value = v;
        return 0;
}

static int split_targets(const char *value, AliasTarget **ret, size_t *ret_n, const char **why) {
        AliasTarget *t = NULL;
        size_t n = 0;
        const char *p = value;
        int r;

        for (;;) {
                const char *start, *a, *b;
                bool q = false;

                start = p;
                while (*p && (q || *p != ',')) {
                        if (*p == '\\' && p[1]) {
                                p += 2;
                                continue;
                        }
                        if (*p == '"')
                                q = !q;
                        p++;
                }
                if (q) {
                        *why = "unbalanced '\"'";
                        r = -EINVAL;
                        goto fail;
                }
                a = start;
                while (a < p && (is_ws(*a) || *a == '\n'))
                        a++;
                b = p;
                while (b > a && (is_ws(b[-1]) || b[-1] == '\n'))
                        b--;

                if (a < b) {
                        AliasTarget *nt = realloc(t, sizeof(AliasTarget) * (n + 1));
                        const char *close = NULL;

                        if (!nt) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        t = nt;
                        t[n] = (AliasTarget) {};

                        /* Find where a leading quoted string ends: a target that is one quoted string
                         * ("|cmd -x", "/path with space") is unquoted first; a quoted local part
                         * ("a b"@example.org) stays an address as written. */
                        if (*a == '"')
                                for (const char *c = a + 1; c < b; c++) {
                                        if (*c == '\\' && c + 1 < b) {
                                                c++;
                                                continue;
                                        }
                                        if (*c == '"') {
                                                close = c;
                                                break;
                                        }
                                }

                        if (close && close == b - 1) {
                                _cleanup_free_ char *u = unquote(a, b);
                                if (!u) {
                                        r = -ENOMEM;
                                        goto fail;
                                }
                                if (u[0] == '|' || u[0] == '/' || strncasecmp(u, ":include:", 9) == 0)
                                        r = target_classify(u, strlen(u), &t[n], why);
                                else
                                        r = target_classify(a, (size_t) (b - a), &t[n], why);
                        } else
                                r = target_classify(a, (size_t) (b - a), &t[n], why);
                        if (r < 0)
                                goto fail;
                        n++;
                }

                if (!*p)
                        break;
                p++;   /* the comma */
        }

        if (n == 0) {
                *why = "no targets";
                r = -EINVAL;
                goto fail;
        }
        *ret = t;
        *ret_n = n;
        return 0;

fail:
        alias_targets_free(t, n);
        return r;
}

int alias_split_targets(const char *value, AliasTarget **ret, size_t *ret_n) {
        const char *why = NULL;
        return split_targets(value, ret, ret_n, &why);
}

static int parse_entry(const char *file, unsigned line, char *text, alias_entry_cb cb, void *userdata,
                       char **ret_error) {
        _cleanup_free_ char *name = NULL;
        AliasTarget *t = NULL;
        const char *why = NULL;
        char *p = text, *value;
        size_t n = 0;
        int r;

        if (*p == '"') {
                char *c = p + 1;
                while (*c && *c != '"') {
                        if (*c == '\\' && c[1])
                                c++;
                        c++;
                }
                if (!*c)
                        return error_set(ret_error, -EINVAL, "%s:%u: unbalanced '\"' in alias name", file, line);
                name = unquote(p, c + 1);
                p = c + 1;
        } else {
                size_t k = strcspn(p, ": \t");
                name = strndup(p, k);
                p += k;
        }
        if (!name)
                return -ENOMEM;
        while (is_ws(*p))
                p++;
        if (*p != ':')
                return error_set(ret_error, -EINVAL, "%s:%u: missing ':' after alias name", file, line);
        if (!*name)
                return error_set(ret_error, -EINVAL, "%s:%u: empty alias name", file, line);
        if (string_has_cc(name))
                return error_set(ret_error, -EINVAL, "%s:%u: control character in alias name", file, line);

        value = strstrip(p + 1);
        if (!*value)
                return error_set(ret_error, -EINVAL, "%s:%u: missing value for alias \"%s\"", file, line, name);

        r = split_targets(value, &t, &n, &why);
        if (r == -EINVAL)
                return error_set(ret_error, -EINVAL, "%s:%u: alias \"%s\": %s", file, line, name, why);
        if (r < 0)
                return r;
        alias_targets_free(t, n);

        return cb(name, value, line, userdata);
}

int alias_parse_buffer(const char *name, const char *buf, size_t len, alias_entry_cb cb, void *userdata,
                       char **ret_error) {
        SourceReader s;
        int r;

        source_reader_init(&s, name, buf, len);
        for (;;) {
                char *text;
                unsigned line;

                r = source_reader_next(&s, &text, &line, ret_error);
                if (r <= 0)
                        break;
                r = parse_entry(name, line, text, cb, userdata, ret_error);
                if (r < 0)
                        break;
        }
        source_reader_done(&s);
        return r;
}

int alias_parse_file(const char *path, alias_entry_cb cb, void *userdata, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = read_source_file(path, &buf, &len, NULL);
        if (r < 0)
                return error_set(ret_error, r, "%s: %s", path, strerror(-r));
        return alias_parse_buffer(path, buf, len, cb, userdata, ret_error);
}
