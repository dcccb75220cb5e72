/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/local/mbox.h"

static const char from_[] = "From ";

void mbox_writer_init(MboxWriter *w, int fd, unsigned flags) {
        w->fd = fd;
        w->flags = flags;
        w->match = 0;
        w->empty = true;
        w->last = '\n';
        w->bytes = 0;
        w->n = 0;
}

static int flush(MboxWriter *w) {
        size_t done = 0;

        if (w->fd < 0) {
                w->n = 0;
                return 0;
        }
        while (done < w->n) {
                ssize_t k = write(w->fd, w->buf + done, w->n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        w->n = 0;
        return 0;
}

static int put(MboxWriter *w, const char *p, size_t len) {
        while (len > 0) {
                size_t room = sizeof w->buf - w->n, k = len < room ? len : room;
                memcpy(w->buf + w->n, p, k);
                w->n += k;
                w->bytes += k;
                p += k;
                len -= k;
                if (w->n == sizeof w->buf) {
                        int r = flush(w);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int putc_(MboxWriter *w, char c) {
        return put(w, &c, 1);
}

char *mbox_sanitize(const char *s, bool from_line) {
        char *t = strdup(strempty(s));
        if (!t)
                return NULL;
        for (char *p = t; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c < 0x20 || c == 0x7f || (from_line && c == ' '))
                        *p = from_line && c == ' ' ? '_' : '?';
        }
        return t;
}

int mbox_writer_header(MboxWriter *w, const MboxEnvelope *env) {
        _cleanup_free_ char *from = NULL, *rp = NULL, *dt = NULL;
        char date[64], line[64];
        struct tm tm;
        int r;

        from = mbox_sanitize(isempty(env->sender) ? "MAILER-DAEMON" : env->sender, true);
        rp = mbox_sanitize(env->sender, false);
        if (!from || !rp)
                return -ENOMEM;
        if (!localtime_r(&env->date, &tm) || strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm) == 0)
                return -EINVAL;

        if (!(w->flags & MBOX_NO_FROM_LINE) &&
            ((r = put(w, "From ", 5)) < 0 || (r = put(w, from, strlen(from))) < 0 ||
             (r = snprintf(line, sizeof line, " %s\n", date)) < 0 || (r = put(w, line, strlen(line))) < 0))
                return r;
        if ((r = put(w, "Return-Path: <", 14)) < 0 || (r = put(w, rp, strlen(rp))) < 0 ||
            (r = put(w, ">\n", 2)) < 0)
                return r;
        if (env->recipient) {
                dt = mbox_sanitize(env->recipient, false);
                if (!dt)
                        return -ENOMEM;
                if ((r = put(w, "Delivered-To: ", 14)) < 0 || (r = put(w, dt, strlen(dt))) < 0 ||
                    (r = putc_(w, '\n')) < 0)
                        return r;
        }
        return 0;
}

/* A line is quoted when its first five bytes are "From ". w->match counts how many of them the
 * current line has shown so far, across calls: those bytes are held back until the line either
 * completes the prefix (then ">From " goes out) or differs (then they go out as they were). */
int mbox_writer_body(MboxWriter *w, const void *data, size_t len) {
        const char *p = data, *end = p + len;
        int r;

        if (len > 0)
                w->empty = false;
        if (!(w->flags & MBOX_QUOTE_FROM)) {
                if (len > 0)
                        w->last = end[-1];
                return put(w, p, len);
        }
        while (p < end) {
                if (w->match < 0) {
                        /* Inside a line: copy up to and including the next newline in one go. */
                        const char *nl = memchr(p, '\n', (size_t) (end - p));
                        const char *stop = nl ? nl + 1 : end;
                        if ((r = put(w, p, (size_t) (stop - p))) < 0)
                                return r;
                        w->last = stop[-1];
                        p = stop;
                        if (nl)
                                w->match = 0;
                        continue;
                }
                if (*p == from_[w->match]) {
                        w->match++;
                        p++;
                        if (w->match == 5) {
                                if ((r = put(w, ">From ", 6)) < 0)
                                        return r;
                                w->last = ' ';
                                w->match = -1;
                        }
                        continue;
                }
                /* Mismatch: the held-back prefix was ordinary text. */
                if (w->match > 0) {
                        if ((r = put(w, from_, (size_t) w->match)) < 0)
                                return r;
                        w->last = from_[w->match - 1];
                }
                w->match = -1;
        }
        return 0;
}

int mbox_writer_finish(MboxWriter *w) {
        int r;

        if (w->match > 0) {
                if ((r = put(w, from_, (size_t) w->match)) < 0)
                        return r;
                w->last = from_[w->match - 1];
                w->match = -1;
        }
        if (!w->empty && w->last != '\n') {
                if ((r = putc_(w, '\n')) < 0)
                        return r;
                w->last = '\n';
        }
        if (w->flags & MBOX_BLANK_LINE)
                if ((r = putc_(w, '\n')) < 0)
                        return r;
        return flush(w);
}

int mbox_write_message(int fd, int queue_fd, uint64_t offset, uint64_t size, const MboxEnvelope *env,
                       unsigned flags, uint64_t *ret_bytes) {
        _cleanup_free_ MboxWriter *w = NULL;
        _cleanup_free_ char *chunk = NULL;
        uint64_t done = 0;
        int r;

        w = malloc(sizeof *w);
        chunk = malloc(MBOX_BUFFER_SIZE);
        if (!w || !chunk)
                return -ENOMEM;
        mbox_writer_init(w, fd, flags);
        r = mbox_writer_header(w, env);
        if (r < 0)
                return r;
        while (done < size) {
                size_t want = size - done < MBOX_BUFFER_SIZE ? (size_t) (size - done) : MBOX_BUFFER_SIZE;
                ssize_t k = pread(queue_fd, chunk, want, (off_t) (offset + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EBADMSG;
                r = mbox_writer_body(w, chunk, (size_t) k);
                if (r < 0)
                        return r;
                done += (uint64_t) k;
        }
        r = mbox_writer_finish(w);
        if (r < 0)
                return r;
        if (ret_bytes)
                *ret_bytes = w->bytes;
        return 0;
}

#define HEADER_SCAN_MAX (256 * 1024)

static bool header_is_delivered_to(const char *line, size_t len, const char *recipient) {
        static const char name[] = "delivered-to:";
        size_t n = sizeof name - 1, rl = strlen(recipient);

        if (len < n || strncasecmp(line, name, n) != 0)
                return false;
        line += n;
        len -= n;
        while (len > 0 && (*line == ' ' || *line == '\t')) {
                line++;
                len--;
        }
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
                len--;
        return len == rl && strncasecmp(line, recipient, rl) == 0;
}

int mbox_has_delivered_to(int queue_fd, uint64_t offset, uint64_t size, const char *recipient) {
        size_t want = size < HEADER_SCAN_MAX ? (size_t) size : HEADER_SCAN_MAX, got = 0;
        _cleanup_free_ char *buf = NULL;

        if (isempty(recipient))
                return 0;
        buf = malloc(want + 1);
        if (!buf)
                return -ENOMEM;
        while (got < want) {
                ssize_t k = pread(queue_fd, buf + got, want - got, (off_t) (offset + got));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                got += (size_t) k;
        }
        for (size_t pos = 0; pos < got;) {
                const char *nl = memchr(buf + pos, '\n', got - pos);
                size_t len = nl ? (size_t) (nl - (buf + pos)) : got - pos;
                if (len == 0 || (len == 1 && buf[pos] == '\r'))
                        break;     /* end of the header */
                if (header_is_delivered_to(buf + pos, len, recipient))
                        return 1;
                pos += len + 1;
        }
        return 0;
}
