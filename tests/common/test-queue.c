/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/queue.h"
#include "common/record.h"
#include "common/strv.h"

static char tmpdir[] = "/tmp/test-queue-XXXXXX";

static void rm_rf(const char *dir) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
        assert(system(cmd) == 0);
}

static char *read_all(const char *path, size_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert(fd >= 0);
        struct stat st;
        assert(fstat(fd, &st) == 0);
        char *buf = malloc((size_t) st.st_size + 1);
        assert(buf);
        assert(read(fd, buf, (size_t) st.st_size) == st.st_size);
        close(fd);
        *ret_len = (size_t) st.st_size;
        return buf;
}

typedef struct Collect {
        char *data;
        size_t len;
} Collect;

static int collect_cb(const void *data, size_t len, void *userdata) {
        Collect *c = userdata;
        c->data = realloc(c->data, c->len + len + 1);
        assert(c->data);
        memcpy(c->data + c->len, data, len);
        c->len += len;
        return 0;
}

static const char hostile_content[] = "Subject: x\r\nZ0:\n\0NUL\r\n.\r\nM00000000000000000001:y\nend\n";

/* Writes one message with CR/LF in every envelope field and NUL in the content. */
static char *write_message(size_t n_rcpt_before, size_t n_rcpt_after, size_t content_repeat) {
        _cleanup_(queue_writer_freep) QueueWriter *w = NULL;
        QueueEnvelopeInfo info = {
                .sender = "evil\r\nS5:other\n@example.test",
                .client = "192.0.2.1\nC5:fake",
                .helo = "helo\r\nR1:Pxx\n",
                .protocol = "ESMTP\rZ0:\n",
                .user = "user\nU0:\n",
                .esmtp = "BODY=8BITMIME\r\nM1:x\n",
        };
        char addr[64];

        assert(queue_writer_new(tmpdir, &w) == 0);
        assert(queue_id_valid(queue_writer_id(w)));
        assert(queue_writer_fd(w) >= 0);
        assert(queue_writer_set_envelope(w, &info, 1700000000) == 0);
        for (size_t i = 0; i < n_rcpt_before; i++) {
                snprintf(addr, sizeof addr, "rcpt%zu\r\nR2:Px\n@example.test", i);
                assert(queue_writer_add_recipient(w, addr) == 0);
        }
        for (size_t i = 0; i < content_repeat; i++)
                assert(queue_writer_write(w, hostile_content, sizeof hostile_content - 1) == 0);
        assert(queue_writer_size(w) == content_repeat * (sizeof hostile_content - 1));
        for (size_t i = 0; i < n_rcpt_after; i++) {
                snprintf(addr, sizeof addr, "late%zu@example.test", i);
                assert(queue_writer_add_recipient(w, addr) == 0);
        }
        assert(queue_writer_n_recipients(w) == n_rcpt_before + n_rcpt_after);
        assert(queue_writer_commit(w) == 0);
        char *id = strdup(queue_writer_id(w));
        assert(id);
        return id;
}

static void test_ids(void) {
        char a[QUEUE_ID_MAX], b[QUEUE_ID_MAX];
        assert(queue_id_new(a) == 0);
        usleep(2);
        assert(queue_id_new(b) == 0);
        assert(strlen(a) == 20 && queue_id_valid(a) && queue_id_valid(b));
        assert(strcmp(a, b) < 0);
        assert(!queue_id_valid("0123456789abcdef0123"));
        assert(!queue_id_valid("../../etc/passwd"));
        assert(!queue_id_valid(""));
        assert(!queue_id_valid("0123456789ABCDEF012"));
        assert(!queue_id_valid("0123456789ABCDEF01234"));
        assert(streq(queue_dir_name(QUEUE_NEW), "new"));
        assert(streq(queue_dir_name(QUEUE_DONE_LOG), "done"));
}

static void test_round_trip(void) {
        _cleanup_free_ char *id = write_message(3, 2, 1000);
        _cleanup_(queue_file_freep) QueueFile *f = NULL;
        char addr[64];

        /* Nothing left in incoming/, the message is in new/. */
        _cleanup_strv_free_ char **inc = NULL, **nw = NULL;
        assert(queue_list(tmpdir, QUEUE_INCOMING, &inc) == 0);
        assert(strv_length(inc) == 0);
        assert(queue_list(tmpdir, QUEUE_NEW, &nw) == 0);
        assert(strv_length(nw) == 1 && streq(nw[0], id));

        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDONLY, true, &f) == 0);
        assert(streq(f->id, id));
        assert(f->arrival == 1700000000);
        assert(f->next_attempt == 0 && f->attempts == 0);
        assert(streq(f->sender, "evil\r\nS5:other\n@example.test"));
        assert(streq(f->client, "192.0.2.1\nC5:fake"));
        assert(streq(f->helo, "helo\r\nR1:Pxx\n"));
        assert(streq(f->protocol, "ESMTP\rZ0:\n"));
        assert(streq(f->user, "user\nU0:\n"));
        assert(streq(f->esmtp, "BODY=8BITMIME\r\nM1:x\n"));
        assert(f->n_recipients == 5);
        for (size_t i = 0; i < 3; i++) {
                snprintf(addr, sizeof addr, "rcpt%zu\r\nR2:Px\n@example.test", i);
                assert(streq(f->recipients[i].address, addr));
                assert(f->recipients[i].status == RECIPIENT_PENDING);
        }
        assert(streq(f->recipients[3].address, "late0@example.test"));
        assert(streq(f->recipients[4].address, "late1@example.test"));
        assert(f->content_size == 1000 * (sizeof hostile_content - 1));

        Collect c = {};
        assert(queue_file_read_content(f, collect_cb, &c) == 0);
        assert(c.len == f->content_size);
        for (size_t i = 0; i < 1000; i++)
                assert(memcmp(c.data + i * (sizeof hostile_content - 1), hostile_content,
                              sizeof hostile_content - 1) == 0);
        free(c.data);

        /* A second locker is refused while we hold it. */
        _cleanup_(queue_file_freep) QueueFile *g = NULL;
        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDONLY, true, &g) == -EWOULDBLOCK);
        assert(!g);
        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDONLY, false, &g) == 0);
        assert(g->n_recipients == 5);
}

static void test_status_updates(void) {
        _cleanup_free_ char *id = write_message(2, 0, 1);
        QueueFile *f = NULL;

        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDWR, true, &f) == 0);
        assert(queue_file_set_recipient_status(f, 1, RECIPIENT_DELIVERED) == 0);
        assert(queue_file_set_recipient_status(f, 0, RECIPIENT_BOUNCED) == 0);
        assert(queue_file_set_recipient_status(f, 2, RECIPIENT_BOUNCED) == -EINVAL);
        assert(queue_file_set_recipient_status(f, 0, 'X') == -EINVAL);
        assert(queue_file_set_schedule(f, 1800000000, 7) == 0);
        assert(queue_file_sync(f) == 0);
        assert(queue_file_move(f, tmpdir, QUEUE_DEFERRED) == 0);
        assert(strstr(f->path, "/deferred/"));
        f = queue_file_free(f);

        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDONLY, true, &f) == -ENOENT);
        assert(queue_file_open_id(tmpdir, QUEUE_DEFERRED, id, O_RDWR, true, &f) == 0);
        assert(f->recipients[0].status == RECIPIENT_BOUNCED);
        assert(f->recipients[1].status == RECIPIENT_DELIVERED);
        assert(f->next_attempt == 1800000000 && f->attempts == 7);
        assert(queue_file_set_schedule(f, UINT64_MAX, 4294967295U) == 0);
        f = queue_file_free(f);
        assert(queue_file_open_id(tmpdir, QUEUE_DEFERRED, id, O_RDONLY, false, &f) == 0);
        assert(f->next_attempt == UINT64_MAX && f->attempts == 4294967295U);

        /* Remove takes the companions with it. */
        char p[512];
        snprintf(p, sizeof p, "%s/defer/%s", tmpdir, id);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert(fd >= 0);
        close(fd);
        assert(queue_file_remove(f, tmpdir) == 0);
        assert(access(p, F_OK) < 0 && errno == ENOENT);
        f = queue_file_free(f);
        assert(queue_file_open_id(tmpdir, QUEUE_DEFERRED, id, O_RDONLY, false, &f) == -ENOENT);
}

static void test_truncation_and_garbage(void) {
        _cleanup_free_ char *id = write_message(2, 1, 3);
        char p[512];
        size_t len;

        snprintf(p, sizeof p, "%s/new/%s", tmpdir, id);
        _cleanup_free_ char *buf = read_all(p, &len);
        QueueFile *f = NULL;

        assert(queue_file_parse_buffer(buf, len, &f) == 0);
        f = queue_file_free(f);

        for (size_t cut = 0; cut < len; cut++) {
                assert(queue_file_parse_buffer(buf, cut, &f) == -EBADMSG);
                assert(!f);
        }

        /* A byte inserted anywhere shifts a record off its length, which the parser notices. (A digit
         * inserted into a length field can, by chance, make another well-formed file: the format
         * has no checksum, its defence is that client bytes never get to choose lengths.) */
        _cleanup_free_ char *ins = malloc(len + 1);
        assert(ins);
        const char garbage[] = { 'X', '\n', ':', 0, 'Z', '\r' };
        for (size_t g = 0; g < sizeof garbage; g++)
                for (size_t at = 0; at <= len; at++) {
                        memcpy(ins, buf, at);
                        ins[at] = garbage[g];
                        memcpy(ins + at + 1, buf + at, len - at);
                        int r = queue_file_parse_buffer(ins, len + 1, &f);
                        if (r != -EBADMSG) {
                                fprintf(stderr, "insert %d at %zu accepted\n", garbage[g], at);
                                abort();
                        }
                }

        /* Structure bytes (letters, length digits, ':' and '\n' ends) replaced: rejected. */
        size_t pos = 6;
        Record rec;
        _cleanup_free_ char *mod = malloc(len);
        assert(mod);
        for (;;) {
                size_t start = pos;
                int r = record_next(buf, len, &pos, &rec);
                assert(r >= 0);
                if (r == 0)
                        break;
                size_t data_start = (size_t) (rec.data - buf);
                size_t structure[] = { start, data_start - 1, pos - 1 };
                for (size_t k = 0; k < ELEMENTSOF(structure); k++) {
                        memcpy(mod, buf, len);
                        mod[structure[k]] = '#';
                        assert(queue_file_parse_buffer(mod, len, &f) == -EBADMSG);
                }
                for (size_t k = start + 1; k < data_start - 1; k++) {
                        memcpy(mod, buf, len);
                        mod[k] = mod[k] == '9' ? '8' : (char) (mod[k] + 1);
                        assert(queue_file_parse_buffer(mod, len, &f) == -EBADMSG);
                }
        }
        /* Bad magic. */
        memcpy(mod, buf, len);
        mod[4] = '2';
        assert(queue_file_parse_buffer(mod, len, &f) == -EBADMSG);

        /* The same file, truncated on disk, is rejected by queue_file_open too. */
        assert(truncate(p, (off_t) len - 1) == 0);
        assert(queue_file_open(p, O_RDONLY, false, &f) == -EBADMSG);
        assert(truncate(p, (off_t) len - 20) == 0);
        assert(queue_file_open(p, O_RDONLY, false, &f) == -EBADMSG);
        assert(unlink(p) == 0);
}

/* Builds a file by hand from records given as a string of letters ("ITWSRMZ"). */
static size_t build(char *buf, size_t size, const char *letters, const char *id) {
        size_t pos = 0;
        memcpy(buf, "MTAQ1\n", 6);
        pos = 6;
        for (const char *l = letters; *l; l++) {
                switch (*l) {
                case 'I':
                        assert(record_put_string(buf, size, &pos, 'I', id) == 0);
                        break;
                case 'T':
                        assert(record_put_string(buf, size, &pos, 'T', "12345") == 0);
                        break;
                case 'W':
                        assert(record_put_string(buf, size, &pos, 'W', "00000000000000000000 0000000000") == 0);
                        break;
                case 'S':
                        assert(record_put_string(buf, size, &pos, 'S', "") == 0);
                        break;
                case 'R':
                        assert(record_put_string(buf, size, &pos, 'R', "Pa@b") == 0);
                        break;
                case 'M':
                        assert(record_put(buf, size, &pos, 'M', "hi\n", 3) == 0);
                        break;
                case 'Z':
                        assert(record_put(buf, size, &pos, 'Z', "", 0) == 0);
                        break;
                default:
                        assert(record_put_string(buf, size, &pos, *l, "x") == 0);
                }
        }
        return pos;
}

static void test_strict(void) {
        const char *id = "0123456789ABCDEF0123";
        char buf[4096], m[40];
        size_t len, pos;
        QueueFile *f = NULL;

        /* The M record must carry a fixed 20-digit length: build() writes a short one, so rewrite
         * it here for the accepted case. */
        len = build(buf, sizeof buf, "ITWSR", id);
        snprintf(m, sizeof m, "M%020d:hi\n\nZ0:\n", 3);
        memcpy(buf + len, m, strlen(m));
        len += strlen(m);
        assert(queue_file_parse_buffer(buf, len, &f) == 0);
        assert(streq(f->id, id) && streq(f->sender, "") && f->n_recipients == 1);
        assert(streq(f->recipients[0].address, "a@b"));
        assert(f->content_size == 3);
        f = queue_file_free(f);

        /* Short M length: rejected (only the fixed width is ours). */
        len = build(buf, sizeof buf, "ITWSRMZ", id);
        assert(queue_file_parse_buffer(buf, len, &f) == -EBADMSG);

        /* Without Z; something after Z; missing required records; duplicates; unknown letters. */
        const char *bad[] = { "ITWSR", "ITWSRZ" , "TWSRZ", "IWSRZ", "ITSRZ", "ITWRZ", "ITWSZ",
                              "IITWSRZ", "ITTWSRZ", "ITWWSRZ", "ITWSSRZ", "ITWSCCRZ", "ITWSHHRZ",
                              "ITWSPPRZ", "ITWSUURZ", "ITWSEERZ", "ITWSRQZ", "ITWSRZZ", "ITWSRZR" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                len = build(buf, sizeof buf, bad[i], id);
                /* give each one a valid M so that only the tested defect remains */
                pos = len;
                if (!strchr(bad[i], 'Z')) {
                        snprintf(m, sizeof m, "M%020d:hi\n\n", 3);
                        memcpy(buf + pos, m, strlen(m));
                        pos += strlen(m);
                }
                assert(queue_file_parse_buffer(buf, pos, &f) == -EBADMSG);
        }

        /* Bad recipient status, NUL inside an envelope field, bad id, bad schedule. */
        const char *recs[] = { "R4:Xa@b\n", "S3:a\0b\n", "I5:../..\n", "W3:123\n", "R1:P\n", "T2:1x\n" };
        for (size_t i = 0; i < ELEMENTSOF(recs); i++) {
                pos = 0;
                memcpy(buf, "MTAQ1\n", 6);
                pos = 6;
                const char *r = recs[i];
                size_t rl = r[0] == 'S' ? 7 : strlen(r);   /* the S case holds a NUL */
                memcpy(buf + pos, r, rl);
                pos += rl;
                char rest[256];
                if (r[0] == 'I')
                        snprintf(rest, sizeof rest, "T1:1\nW31:00000000000000000000 0000000000\nS0:\nR2:Pa\n"
                                 "M%020d:\n\nZ0:\n", 0);
                else
                        snprintf(rest, sizeof rest, "I20:%s\nT1:1\nW31:00000000000000000000 0000000000\n%s%s"
                                 "M%020d:\n\nZ0:\n", id, r[0] == 'S' ? "" : "S0:\n",
                                 r[0] == 'R' ? "" : "R2:Pa\n", 0);
                memcpy(buf + pos, rest, strlen(rest));
                pos += strlen(rest);
                int k = queue_file_parse_buffer(buf, pos, &f);
                if (k != -EBADMSG) {
                        fprintf(stderr, "case %zu accepted\n", i);
                        abort();
                }
        }
        assert(queue_file_parse_buffer("", 0, &f) == -EBADMSG);
        assert(queue_file_parse_buffer(NULL, 0, &f) == -EBADMSG);
}

static void test_writer_discard(void) {
        QueueWriter *w = NULL;
        char p[512];
        QueueEnvelopeInfo info = { .sender = "" };

        assert(queue_writer_new(tmpdir, &w) == 0);
        snprintf(p, sizeof p, "%s/incoming/%s", tmpdir, queue_writer_id(w));
        assert(access(p, F_OK) == 0);
        /* The writer holds the lock: a runner cleaning debris must see it is alive. */
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        assert(fd >= 0);
        assert(flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK);
        close(fd);
        /* Commit needs an envelope and a recipient. */
        assert(queue_writer_close_data(w) == -EINVAL);
        assert(queue_writer_set_envelope(w, &info, 1) == 0);
        assert(queue_writer_write(w, "x\n", 2) == 0);
        assert(queue_writer_close_data(w) == -EINVAL);
        assert(queue_writer_link(w) == -EINVAL);
        w = queue_writer_free(w);
        assert(access(p, F_OK) < 0 && errno == ENOENT);

        /* Steps in order, as the receiver's group commit does them. */
        assert(queue_writer_new(tmpdir, &w) == 0);
        assert(queue_writer_set_envelope(w, &info, 1) == 0);
        assert(queue_writer_add_recipient(w, "a@b") == 0);
        assert(queue_writer_close_data(w) == 0);
        assert(queue_writer_write(w, "x", 1) == -EBUSY);
        assert(queue_writer_sync(w) == 0);
        assert(queue_writer_link(w) == 0);
        assert(queue_sync_dir(tmpdir, QUEUE_NEW) == 0);
        char id[QUEUE_ID_MAX];
        strcpy(id, queue_writer_id(w));
        w = queue_writer_free(w);
        QueueFile *f = NULL;
        assert(queue_file_open_id(tmpdir, QUEUE_NEW, id, O_RDONLY, true, &f) == 0);
        assert(f->content_size == 0 && streq(f->sender, "") && !f->client);
        f = queue_file_free(f);
}

/* The commit never replaces another message that got the same id. */
static void test_writer_no_replace(void) {
        QueueWriter *other = NULL;
        QueueEnvelopeInfo info = { .sender = "s@example.test" };
        char p[512];
        size_t len;

        /* A name already taken in new/ (forced here; ids are unique by time and chance) stays. */
        assert(queue_writer_new(tmpdir, &other) == 0);
        assert(queue_writer_set_envelope(other, &info, 1) == 0);
        assert(queue_writer_add_recipient(other, "c@d") == 0);
        assert(queue_writer_close_data(other) == 0);
        assert(queue_writer_sync(other) == 0);
        snprintf(p, sizeof p, "%s/new/%s", tmpdir, queue_writer_id(other));
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert(fd >= 0);
        assert(write(fd, "taken", 5) == 5);
        close(fd);
        assert(queue_writer_link(other) == -EEXIST);
        char *kept = read_all(p, &len);
        assert(len == 5 && memcmp(kept, "taken", 5) == 0);
        free(kept);
        assert(unlink(p) == 0);
        other = queue_writer_free(other);   /* removes its own file from incoming/ */
}

static void test_list(void) {
        char dir2[] = "/tmp/test-queue-list-XXXXXX";
        char **ids = NULL;
        assert(mkdtemp(dir2));
        assert(queue_list(dir2, QUEUE_NEW, &ids) == 0);   /* missing directory: empty */
        assert(strv_length(ids) == 0);
        ids = strv_free(ids);
        assert(queue_dirs_ensure(dir2) == 0);
        for (QueueDir d = 0; d < _QUEUE_DIR_MAX; d++) {
                char p[512];
                struct stat st;
                snprintf(p, sizeof p, "%s/%s", dir2, queue_dir_name(d));
                assert(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
        }
        char p[512];
        snprintf(p, sizeof p, "%s/new/not-an-id", dir2);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert(fd >= 0);
        close(fd);
        const char *names[] = { "00000000200000000000", "00000000100000000000", "0000000030000000000F" };
        for (size_t i = 0; i < 3; i++) {
                snprintf(p, sizeof p, "%s/new/%s", dir2, names[i]);
                fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                assert(fd >= 0);
                close(fd);
        }
        assert(queue_list(dir2, QUEUE_NEW, &ids) == 0);
        assert(strv_length(ids) == 3);
        assert(streq(ids[0], names[1]) && streq(ids[1], names[0]) && streq(ids[2], names[2]));
        ids = strv_free(ids);
        rm_rf(dir2);
}

int main(void) {
        assert(mkdtemp(tmpdir));
        test_ids();
        test_round_trip();
        test_status_updates();
        test_truncation_and_garbage();
        test_strict();
        test_writer_discard();
        test_writer_no_replace();
        test_list();
        rm_rf(tmpdir);
        printf("test-queue: ok\n");
        return 0;
}
