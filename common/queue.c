/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/queue.h"
#include "common/record.h"
#include "common/strv.h"

#define QUEUE_MAGIC "MTAQ1\n"
#define QUEUE_WRITER_BUFFER (32U * 1024U)
/* Envelope records are small; anything bigger than this is not ours. */
#define QUEUE_ENVELOPE_RECORD_MAX (1024U * 1024U)

static const char *const queue_dir_names[_QUEUE_DIR_MAX] = {
        [QUEUE_INCOMING] = "incoming",
        [QUEUE_NEW] = "new",
        [QUEUE_DEFERRED] = "deferred",
        [QUEUE_HOLD] = "hold",
        [QUEUE_CORRUPT] = "corrupt",
        [QUEUE_DEFER_LOG] = "defer",
        [QUEUE_DONE_LOG] = "done",
};

const char *queue_dir_name(QueueDir d) {
        if (d < 0 || d >= _QUEUE_DIR_MAX)
                return NULL;
        return queue_dir_names[d];
}

int queue_dirs_ensure(const char *queue_dir) {
        _cleanup_close_ int dfd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return negative_errno();
        for (QueueDir d = 0; d < _QUEUE_DIR_MAX; d++)
                if (mkdirat(dfd, queue_dir_names[d], 0700) < 0 && errno != EEXIST)
                        return negative_errno();
        return 0;
}

int queue_id_new(char ret[static QUEUE_ID_MAX]) {
        struct timeval tv;
        uint32_t rnd;

        if (gettimeofday(&tv, NULL) < 0)
                return negative_errno();
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
                return -EIO;
        /* 9 digits of seconds (good until the year 4147), 5 of microseconds, 6 random: fixed width,
         * so the lexical order of ids is their arrival order. */
        snprintf(ret, QUEUE_ID_MAX, "%09" PRIX64 "%05" PRIX32 "%06" PRIX32,
                 (uint64_t) tv.tv_sec & UINT64_C(0xFFFFFFFFF), (uint32_t) tv.tv_usec, rnd & 0xFFFFFFU);
        return 0;
}

bool queue_id_valid(const char *id) {
        size_t n = 0;
        if (!id)
                return false;
        for (; id[n]; n++)
                if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'A' && id[n] <= 'F')))
                        return false;
        return n == 20;
}

static int path_join3(const char *a, const char *b, const char *c, char **ret) {
        char *p;
        if (asprintf(&p, "%s/%s/%s", a, b, c) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int queue_sync_dir(const char *queue_dir, QueueDir d) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", queue_dir, queue_dir_name(d)) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* ---- writer ---- */

struct QueueWriter {
        int fd;
        char id[QUEUE_ID_MAX];
        char *queue_dir;
        char *path;             /* incoming/ID */
        char *new_path;         /* new/ID */

        char *sender, *client, *helo, *protocol, *user, *esmtp;
        uint64_t arrival;
        bool have_envelope, envelope_written;
        char **recipients;
        size_t n_recipients, n_recipients_written;

        char *buf;
        size_t buf_used;
        off_t file_pos;         /* bytes handed to write() so far */
        off_t m_len_offset;     /* where the M record's 20 length digits are */
        bool header_written, data_closed, synced, linked;
        uint64_t content_size;
};

static int full_write(int fd, const void *data, size_t len) {
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static int writer_flush(QueueWriter *w) {
        if (w->buf_used == 0)
                return 0;
        int r = full_write(w->fd, w->buf, w->buf_used);
        if (r < 0)
                return r;
        w->file_pos += (off_t) w->buf_used;
        w->buf_used = 0;
        return 0;
}

static int writer_append(QueueWriter *w, const void *data, size_t len) {
        int r;

        if (len > QUEUE_WRITER_BUFFER - w->buf_used) {
                r = writer_flush(w);
                if (r < 0)
                        return r;
                if (len >= QUEUE_WRITER_BUFFER) {
                        r = full_write(w->fd, data, len);
                        if (r < 0)
                                return r;
                        w->file_pos += (off_t) len;
                        return 0;
                }
        }
        memcpy(w->buf + w->buf_used, data, len);
        w->buf_used += len;
        return 0;
}

static int writer_record(QueueWriter *w, char type, const void *data, size_t len) {
        char head[2 + RECORD_LEN_DIGITS_MAX + 1];
        int h = snprintf(head, sizeof head, "%c%zu:", type, len);
        int r = writer_append(w, head, (size_t) h);
        if (r < 0)
                return r;
        if (len > 0) {
                r = writer_append(w, data, len);
                if (r < 0)
                        return r;
        }
        return writer_append(w, "\n", 1);
}

static int writer_record_string(QueueWriter *w, char type, const char *s) {
        if (!s)
                return 0;
        return writer_record(w, type, s, strlen(s));
}

static int writer_put_envelope(QueueWriter *w) {
        char num[RECORD_LEN_DIGITS_MAX + 1], sched[QUEUE_SCHEDULE_LEN + 1];
        int r;

        if (!w->have_envelope || w->envelope_written)
                return 0;
        snprintf(num, sizeof num, "%" PRIu64, w->arrival);
        snprintf(sched, sizeof sched, "%020" PRIu64 " %010u", (uint64_t) 0, 0U);
        if ((r = writer_record(w, 'T', num, strlen(num))) < 0 ||
            (r = writer_record(w, 'W', sched, QUEUE_SCHEDULE_LEN)) < 0 ||
            (r = writer_record_string(w, 'S', w->sender)) < 0 ||
            (r = writer_record_string(w, 'C', w->client)) < 0 ||
            (r = writer_record_string(w, 'H', w->helo)) < 0 ||
            (r = writer_record_string(w, 'P', w->protocol)) < 0 ||
            (r = writer_record_string(w, 'U', w->user)) < 0 ||
            (r = writer_record_string(w, 'E', w->esmtp)) < 0)
                return r;
        w->envelope_written = true;
        return 0;
}

static int writer_put_recipients(QueueWriter *w) {
        for (; w->n_recipients_written < w->n_recipients; w->n_recipients_written++) {
                const char *a = w->recipients[w->n_recipients_written];
                size_t l = strlen(a);
                _cleanup_free_ char *d = malloc(l + 1);
                if (!d)
                        return -ENOMEM;
                d[0] = RECIPIENT_PENDING;
                memcpy(d + 1, a, l);
                int r = writer_record(w, 'R', d, l + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int writer_put_header(QueueWriter *w) {
        int r;

        if (w->header_written)
                return 0;
        if ((r = writer_append(w, QUEUE_MAGIC, strlen(QUEUE_MAGIC))) < 0 ||
            (r = writer_record(w, 'I', w->id, strlen(w->id))) < 0 ||
            (r = writer_put_envelope(w)) < 0 ||
            (r = writer_put_recipients(w)) < 0)
                return r;
        /* The M length is filled in at close time, so it has its full fixed width now. */
        r = writer_append(w, "M", 1);
        if (r < 0)
                return r;
        w->m_len_offset = w->file_pos + (off_t) w->buf_used;
        if ((r = writer_append(w, "00000000000000000000:", RECORD_LEN_DIGITS_MAX + 1)) < 0)
                return r;
        w->header_written = true;
        return 0;
}

int queue_writer_new(const char *queue_dir, QueueWriter **ret) {
        QueueWriter *w;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        w->queue_dir = strdup(queue_dir);
        w->buf = malloc(QUEUE_WRITER_BUFFER);
        if (!w->queue_dir || !w->buf) {
                queue_writer_free(w);
                return -ENOMEM;
        }

        for (unsigned attempt = 0;; attempt++) {
                r = queue_id_new(w->id);
                if (r < 0)
                        goto fail;
                free(w->path);
                w->path = NULL;
                r = path_join3(queue_dir, "incoming", w->id, &w->path);
                if (r < 0)
                        goto fail;
                w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (w->fd >= 0)
                        break;
                r = negative_errno();
                if (r == -ENOENT && attempt == 0) {
                        /* First use: make the layout, then try again. */
                        r = queue_dirs_ensure(queue_dir);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                if (r != -EEXIST || attempt > 16)
                        goto fail;
        }
        if (flock(w->fd, LOCK_EX | LOCK_NB) < 0) {
                r = negative_errno();
                goto fail;
        }
        r = path_join3(queue_dir, "new", w->id, &w->new_path);
        if (r < 0)
                goto fail;
        *ret = w;
        return 0;

fail:
        queue_writer_free(w);
        return r;
}

QueueWriter *queue_writer_free(QueueWriter *w) {
        if (!w)
                return NULL;
        if (w->fd >= 0 && !w->linked && w->path)
                (void) unlink(w->path);
        safe_close(w->fd);
        free(w->queue_dir);
        free(w->path);
        free(w->new_path);
        free(w->sender);
        free(w->client);
        free(w->helo);
        free(w->protocol);
        free(w->user);
        free(w->esmtp);
        strv_free(w->recipients);
        free(w->buf);
        free(w);
        return NULL;
}

const char *queue_writer_id(const QueueWriter *w) {
        return w->id;
}

int queue_writer_fd(const QueueWriter *w) {
        return w->fd;
}

static int dup_opt(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int queue_writer_set_envelope(QueueWriter *w, const QueueEnvelopeInfo *info, uint64_t arrival) {
        _cleanup_free_ char *sender = NULL, *client = NULL, *helo = NULL, *protocol = NULL,
                            *user = NULL, *esmtp = NULL;

        if (!info || !info->sender)
                return -EINVAL;
        if (w->have_envelope || w->data_closed)
                return -EBUSY;
        if (dup_opt(info->sender, &sender) < 0 || dup_opt(info->client, &client) < 0 ||
            dup_opt(info->helo, &helo) < 0 || dup_opt(info->protocol, &protocol) < 0 ||
            dup_opt(info->user, &user) < 0 || dup_opt(info->esmtp, &esmtp) < 0)
                return -ENOMEM;
        w->sender = TAKE_PTR(sender);
        w->client = TAKE_PTR(client);
        w->helo = TAKE_PTR(helo);
        w->protocol = TAKE_PTR(protocol);
        w->user = TAKE_PTR(user);
        w->esmtp = TAKE_PTR(esmtp);
        w->arrival = arrival;
        w->have_envelope = true;
        return 0;
}

int queue_writer_add_recipient(QueueWriter *w, const char *address) {
        if (!address)
                return -EINVAL;
        if (w->data_closed)
                return -EBUSY;
        int r = strv_extend(&w->recipients, address);
        if (r < 0)
                return r;
        w->n_recipients++;
        return 0;
}

size_t queue_writer_n_recipients(const QueueWriter *w) {
        return w->n_recipients;
}

int queue_writer_write(QueueWriter *w, const void *data, size_t len) {
        int r;

        if (w->data_closed)
                return -EBUSY;
        r = writer_put_header(w);
        if (r < 0)
                return r;
        if (len == 0)
                return 0;
        r = writer_append(w, data, len);
        if (r < 0)
                return r;
        w->content_size += len;
        return 0;
}

uint64_t queue_writer_size(const QueueWriter *w) {
        return w->content_size;
}

int queue_writer_close_data(QueueWriter *w) {
        char digits[RECORD_LEN_DIGITS_MAX + 1];
        int r;

        if (w->data_closed)
                return 0;
        if (!w->have_envelope || w->n_recipients == 0)
                return -EINVAL;
        r = writer_put_header(w);
        if (r < 0)
                return r;
        if ((r = writer_append(w, "\n", 1)) < 0 ||
            (r = writer_put_envelope(w)) < 0 ||
            (r = writer_put_recipients(w)) < 0 ||
            (r = writer_record(w, 'Z', NULL, 0)) < 0 ||
            (r = writer_flush(w)) < 0)
                return r;
        snprintf(digits, sizeof digits, "%020" PRIu64, w->content_size);
        ssize_t n = pwrite(w->fd, digits, RECORD_LEN_DIGITS_MAX, w->m_len_offset);
        if (n < 0)
                return negative_errno();
        if (n != RECORD_LEN_DIGITS_MAX)
                return -EIO;
        w->data_closed = true;
        free(w->buf);
        w->buf = NULL;
        return 0;
}

int queue_writer_sync(QueueWriter *w) {
        if (!w->data_closed)
                return -EINVAL;
        if (fdatasync(w->fd) < 0)
                return negative_errno();
        w->synced = true;
        return 0;
}

static int writer_rename(QueueWriter *w) {
        if (w->linked)
                return 0;
        /* Never over another message: O_EXCL made the id unique in incoming/ only, and new/
         * holds older messages whose ids came from the same clock and random source. */
        if (renameat2(AT_FDCWD, w->path, AT_FDCWD, w->new_path, RENAME_NOREPLACE) < 0) {
                if (errno != EINVAL)
                        return negative_errno();
                /* A file system without RENAME_NOREPLACE. */
                if (rename(w->path, w->new_path) < 0)
                        return negative_errno();
        }
        w->linked = true;
        return 0;
}

int queue_writer_link(QueueWriter *w) {
        if (!w->synced)
                return -EINVAL;
        return writer_rename(w);
}

int queue_writer_link_unsynced(QueueWriter *w) {
        if (!w->data_closed)
                return -EINVAL;
        return writer_rename(w);
}

int queue_writer_commit(QueueWriter *w) {
        int r;
        if ((r = queue_writer_close_data(w)) < 0 || (r = queue_writer_sync(w)) < 0 ||
            (r = queue_writer_link(w)) < 0)
                return r;
        return queue_sync_dir(w->queue_dir, QUEUE_NEW);
}

/* ---- reading ---- */

/* The parser reads through this, so that one strict parser serves files (pread, without loading
 * the content) and in-memory buffers. read_at returns the bytes read, short only at the end. */
typedef struct Source {
        const char *buf;
        size_t buf_len;
        int fd;
        char cache[16384];
        off_t cache_off;
        size_t cache_len;
} Source;

static ssize_t source_read(Source *s, off_t off, void *dst, size_t n) {
        if (off < 0)
                return -EINVAL;
        if (s->buf) {
                if ((uint64_t) off >= s->buf_len)
                        return 0;
                size_t m = s->buf_len - (size_t) off;
                if (m > n)
                        m = n;
                memcpy(dst, s->buf + off, m);
                return (ssize_t) m;
        }
        size_t done = 0;
        while (done < n) {
                off_t o = off + (off_t) done;
                if (o >= s->cache_off && o < s->cache_off + (off_t) s->cache_len) {
                        size_t avail = s->cache_len - (size_t) (o - s->cache_off);
                        size_t m = avail < n - done ? avail : n - done;
                        memcpy((char *) dst + done, s->cache + (o - s->cache_off), m);
                        done += m;
                        continue;
                }
                ssize_t k = pread(s->fd, s->cache, sizeof s->cache, o);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                s->cache_off = o;
                s->cache_len = (size_t) k;
                if (k == 0)
                        break;
        }
        return (ssize_t) done;
}

QueueFile *queue_file_free(QueueFile *f) {
        if (!f)
                return NULL;
        safe_close(f->fd);
        free(f->path);
        free(f->sender);
        free(f->client);
        free(f->helo);
        free(f->protocol);
        free(f->user);
        free(f->esmtp);
        for (size_t i = 0; i < f->n_recipients; i++)
                free(f->recipients[i].address);
        free(f->recipients);
        free(f);
        return NULL;
}

static int parse_digits(const char *s, size_t n, uint64_t *ret) {
        return record_parse_len(s, n, ret);
}

static int take_string(const char *data, size_t len, char **field) {
        if (*field)
                return -EBADMSG;        /* a single-valued record met twice */
        /* Our strings are C strings: a NUL inside would silently cut the value, so it is corrupt. */
        if (memchr(data, 0, len))
                return -EBADMSG;
        char *s = strndup(data, len);
        if (!s)
                return -ENOMEM;
        *field = s;
        return 0;
}

static int queue_parse(Source *s, QueueFile *f) {
        char magic[sizeof QUEUE_MAGIC - 1];
        bool seen_i = false, seen_t = false, seen_w = false, seen_m = false, seen_z = false;
        off_t pos;
        ssize_t n;
        int r;

        n = source_read(s, 0, magic, sizeof magic);
        if (n < 0)
                return (int) n;
        if ((size_t) n != sizeof magic || memcmp(magic, QUEUE_MAGIC, sizeof magic) != 0)
                return -EBADMSG;
        pos = (off_t) sizeof magic;

        for (;;) {
                char head[2 + RECORD_LEN_DIGITS_MAX + 1];
                size_t digits = 0;
                uint64_t len;

                n = source_read(s, pos, head, sizeof head);
                if (n < 0)
                        return (int) n;
                if (n == 0) {
                        if (!seen_z)
                                return -EBADMSG;   /* incomplete: no Z */
                        break;
                }
                if (seen_z)
                        return -EBADMSG;           /* anything after Z */
                char type = head[0];
                while (1 + digits < (size_t) n && head[1 + digits] != ':')
                        digits++;
                if (1 + digits >= (size_t) n)
                        return -EBADMSG;
                if (parse_digits(head + 1, digits, &len) < 0)
                        return -EBADMSG;
                /* One spelling per file: no leading zeros, except the M record's fixed width. */
                if (type != 'M' && digits > 1 && head[1] == '0')
                        return -EBADMSG;
                off_t data_off = pos + 1 + (off_t) digits + 1;
                if (len > (uint64_t) INT64_MAX - (uint64_t) data_off - 1)
                        return -EBADMSG;
                off_t end = data_off + (off_t) len;   /* the "\n" */
                char nl;
                n = source_read(s, end, &nl, 1);
                if (n < 0)
                        return (int) n;
                if (n != 1 || nl != '\n')
                        return -EBADMSG;

                if (type == 'M') {
                        if (seen_m || digits != RECORD_LEN_DIGITS_MAX)
                                return -EBADMSG;
                        seen_m = true;
                        f->content_offset = data_off;
                        f->content_size = len;
                        pos = end + 1;
                        continue;
                }
                if (type == 'Z') {
                        if (len != 0)
                                return -EBADMSG;
                        seen_z = true;
                        pos = end + 1;
                        continue;
                }
                if (len > QUEUE_ENVELOPE_RECORD_MAX)
                        return -EBADMSG;
                _cleanup_free_ char *data = malloc(len + 1);
                if (!data)
                        return -ENOMEM;
                n = source_read(s, data_off, data, len);
                if (n < 0)
                        return (int) n;
                if ((uint64_t) n != len)
                        return -EBADMSG;
                data[len] = 0;

                switch (type) {
                case 'I':
                        if (seen_i || !queue_id_valid(data) || strlen(data) != len)
                                return -EBADMSG;
                        memcpy(f->id, data, len + 1);
                        seen_i = true;
                        break;
                case 'T':
                        if (seen_t || parse_digits(data, len, &f->arrival) < 0)
                                return -EBADMSG;
                        seen_t = true;
                        break;
                case 'W': {
                        uint64_t at, attempts;
                        if (seen_w || len != QUEUE_SCHEDULE_LEN || data[20] != ' ' ||
                            parse_digits(data, 20, &at) < 0 || parse_digits(data + 21, 10, &attempts) < 0 ||
                            attempts > UINT32_MAX)
                                return -EBADMSG;
                        f->next_attempt = at;
                        f->attempts = (unsigned) attempts;
                        f->schedule_offset = data_off;
                        seen_w = true;
                        break;
                }
                case 'S':
                        r = take_string(data, len, &f->sender);
                        if (r < 0)
                                return r;
                        break;
                case 'C':
                        r = take_string(data, len, &f->client);
                        if (r < 0)
                                return r;
                        break;
                case 'H':
                        r = take_string(data, len, &f->helo);
                        if (r < 0)
                                return r;
                        break;
                case 'P':
                        r = take_string(data, len, &f->protocol);
                        if (r < 0)
                                return r;
                        break;
                case 'U':
                        r = take_string(data, len, &f->user);
                        if (r < 0)
                                return r;
                        break;
                case 'E':
                        r = take_string(data, len, &f->esmtp);
                        if (r < 0)
                                return r;
                        break;
                case 'R': {
                        if (len < 2 || (data[0] != RECIPIENT_PENDING && data[0] != RECIPIENT_DELIVERED &&
                                        data[0] != RECIPIENT_BOUNCED) || memchr(data, 0, len))
                                return -EBADMSG;
                        QueueRecipient *a = reallocarray(f->recipients, f->n_recipients + 1, sizeof *a);
                        if (!a)
                                return -ENOMEM;
                        f->recipients = a;
                        char *addr = strdup(data + 1);
                        if (!addr)
                                return -ENOMEM;
                        a[f->n_recipients++] = (QueueRecipient) {
                                .address = addr,
                                .status = (RecipientStatus) data[0],
                                .status_offset = data_off,
                        };
                        break;
                }
                default:
                        return -EBADMSG;
                }
                pos = end + 1;
        }

        if (!seen_i || !seen_t || !seen_w || !seen_m || !f->sender || f->n_recipients == 0)
                return -EBADMSG;
        return 0;
}

static QueueFile *queue_file_alloc(void) {
        QueueFile *f = calloc(1, sizeof *f);
        if (f)
                f->fd = -EBADF;
        return f;
}

int queue_file_parse_buffer(const void *buf, size_t len, QueueFile **ret) {
        _cleanup_(queue_file_freep) QueueFile *f = queue_file_alloc();
        if (!f)
                return -ENOMEM;
        _cleanup_free_ Source *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->buf = buf ? buf : "";
        s->buf_len = len;
        s->fd = -EBADF;
        int r = queue_parse(s, f);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

int queue_file_open(const char *path, int flags, bool lock, QueueFile **ret) {
        _cleanup_(queue_file_freep) QueueFile *f = NULL;
        int r;

        if (flags != O_RDONLY && flags != O_RDWR)
                return -EINVAL;
        f = queue_file_alloc();
        if (!f)
                return -ENOMEM;
        f->path = strdup(path);
        if (!f->path)
                return -ENOMEM;
        f->fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (f->fd < 0)
                return negative_errno();
        if (lock) {
                struct stat a, b;
                if (flock(f->fd, LOCK_EX | LOCK_NB) < 0)
                        return negative_errno();
                /* Another process may have moved or removed it before we got the lock. */
                if (fstat(f->fd, &a) < 0)
                        return negative_errno();
                if (stat(path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                        return -ENOENT;
        }
        struct stat st;
        if (fstat(f->fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;

        _cleanup_free_ Source *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->fd = f->fd;
        r = queue_parse(s, f);
        if (r < 0)
                return r;
        /* The name is the id: a file whose I record disagrees was tampered with or misplaced. */
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!streq(base, f->id))
                return -EBADMSG;
        *ret = TAKE_PTR(f);
        return 0;
}

int queue_file_open_id(const char *queue_dir, QueueDir d, const char *id, int flags, bool lock,
                       QueueFile **ret) {
        _cleanup_free_ char *p = NULL;
        if (!queue_id_valid(id) || !queue_dir_name(d))
                return -EINVAL;
        int r = path_join3(queue_dir, queue_dir_name(d), id, &p);
        if (r < 0)
                return r;
        return queue_file_open(p, flags, lock, ret);
}

static int full_pwrite(int fd, const void *data, size_t len, off_t off) {
        ssize_t n = pwrite(fd, data, len, off);
        if (n < 0)
                return negative_errno();
        return (size_t) n == len ? 0 : -EIO;
}

int queue_file_set_recipient_status(QueueFile *f, size_t index, RecipientStatus status) {
        if (index >= f->n_recipients || f->fd < 0)
                return -EINVAL;
        if (status != RECIPIENT_PENDING && status != RECIPIENT_DELIVERED && status != RECIPIENT_BOUNCED)
                return -EINVAL;
        char c = (char) status;
        int r = full_pwrite(f->fd, &c, 1, f->recipients[index].status_offset);
        if (r < 0)
                return r;
        f->recipients[index].status = status;
        return 0;
}

int queue_file_set_schedule(QueueFile *f, uint64_t next_attempt, unsigned attempts) {
        char sched[QUEUE_SCHEDULE_LEN + 1];
        if (f->fd < 0)
                return -EINVAL;
        snprintf(sched, sizeof sched, "%020" PRIu64 " %010u", next_attempt, attempts);
        int r = full_pwrite(f->fd, sched, QUEUE_SCHEDULE_LEN, f->schedule_offset);
        if (r < 0)
                return r;
        f->next_attempt = next_attempt;
        f->attempts = attempts;
        return 0;
}

int queue_file_sync(QueueFile *f) {
        if (f->fd < 0)
                return -EINVAL;
        if (fdatasync(f->fd) < 0)
                return negative_errno();
        return 0;
}

static int sync_parent_of(const char *path) {
        _cleanup_free_ char *d = strdup(path);
        if (!d)
                return -ENOMEM;
        char *slash = strrchr(d, '/');
        if (slash == d)
                slash[1] = 0;
        else if (slash)
                *slash = 0;
        else {
                free(d);
                d = strdup(".");
                if (!d)
                        return -ENOMEM;
        }
        _cleanup_close_ int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

int queue_file_move(QueueFile *f, const char *queue_dir, QueueDir to) {
        _cleanup_free_ char *p = NULL;
        int r;

        if (!queue_dir_name(to) || !queue_id_valid(f->id) || !f->path)
                return -EINVAL;
        r = path_join3(queue_dir, queue_dir_name(to), f->id, &p);
        if (r < 0)
                return r;
        if (streq(p, f->path))
                return 0;
        if (rename(f->path, p) < 0)
                return negative_errno();
        /* Destination first: once it is durable the message cannot be lost, whatever the source
         * directory says after a crash (at worst it shows up twice and the lock sorts it out). */
        r = sync_parent_of(p);
        int k = sync_parent_of(f->path);
        free(f->path);
        f->path = TAKE_PTR(p);
        return r < 0 ? r : k;
}

int queue_file_remove(QueueFile *f, const char *queue_dir) {
        _cleanup_free_ char *a = NULL, *b = NULL;
        int r;

        if (!f->path || !queue_id_valid(f->id))
                return -EINVAL;
        if ((r = path_join3(queue_dir, "defer", f->id, &a)) < 0 ||
            (r = path_join3(queue_dir, "done", f->id, &b)) < 0)
                return r;
        if (unlink(f->path) < 0 && errno != ENOENT)
                return negative_errno();
        /* Companions go after the message, so a crash in between leaves only harmless logs. */
        (void) unlink(a);
        (void) unlink(b);
        /* No directory sync: every delivery is on disk before we get here, so losing the unlink to
         * a power cut can only bring the message back for a second delivery, never lose it. Postfix
         * makes the same trade; the sync would cost one more disk flush per message. */
        return 0;
}

int queue_file_read_content(QueueFile *f, queue_content_cb cb, void *userdata) {
        char buf[65536];
        uint64_t done = 0;

        if (f->fd < 0)
                return -EINVAL;
        while (done < f->content_size) {
                size_t want = f->content_size - done < sizeof buf ? (size_t) (f->content_size - done) : sizeof buf;
                ssize_t n = pread(f->fd, buf, want, f->content_offset + (off_t) done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EBADMSG;
                int r = cb(buf, (size_t) n, userdata);
                if (r != 0)
                        return r;
                done += (uint64_t) n;
        }
        return 0;
}

static int id_cmp(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

int queue_list(const char *queue_dir, QueueDir d, char ***ret_ids) {
        _cleanup_free_ char *p = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        size_t n = 0;

        if (!queue_dir_name(d))
                return -EINVAL;
        if (asprintf(&p, "%s/%s", queue_dir, queue_dir_name(d)) < 0)
                return -ENOMEM;
        DIR *dir = opendir(p);
        if (!dir) {
                if (errno != ENOENT)
                        return negative_errno();
                ids = calloc(1, sizeof(char *));
                if (!ids)
                        return -ENOMEM;
                *ret_ids = TAKE_PTR(ids);
                return 0;
        }
        ids = calloc(1, sizeof(char *));
        if (!ids) {
                closedir(dir);
                return -ENOMEM;
        }
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(dir);
                if (!de) {
                        if (errno != 0) {
                                int r = negative_errno();
                                closedir(dir);
                                return r;
                        }
                        break;
                }
                if (!queue_id_valid(de->d_name))
                        continue;
                int r = strv_extend(&ids, de->d_name);
                if (r < 0) {
                        closedir(dir);
                        return r;
                }
                n++;
        }
        closedir(dir);
        qsort(ids, n, sizeof(char *), id_cmp);
        *ret_ids = TAKE_PTR(ids);
        return 0;
}
