/* SPDX-License-Identifier: MIT */
/*
 * The SMTP session as a state machine, without sockets: scripted dialogues fed whole, byte by
 * byte and in random chunks (with commits completing later, as the committer thread does) must
 * give the same replies and queue the same messages. This is also how a fuzz target drives it.
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/strv.h"
#include "services/smtpd/smtp-session.h"

static char tmpdir[] = "/tmp/test-smtp-session-XXXXXX";
static char spool[512];

typedef struct Buf {
        char *data;
        size_t len;
} Buf;

static void buf_add(Buf *b, const void *d, size_t n) {
        b->data = realloc(b->data, b->len + n + 1);
        assert(b->data);
        memcpy(b->data + b->len, d, n);
        b->len += n;
        b->data[b->len] = 0;
}

typedef struct Driver {
        QueueWriter *pending;     /* a commit waiting to be completed */
        bool immediate;
        unsigned starttls;
} Driver;

static void op_commit(SmtpSession *s, QueueWriter *w, void *userdata) {
        Driver *d = userdata;
        if (d->immediate) {
                int r = queue_writer_commit(w);
                queue_writer_free(w);
                smtp_session_commit_done(s, r);
                return;
        }
        assert(!d->pending);
        d->pending = w;
}

static void op_starttls(SmtpSession *s, void *userdata) {
        Driver *d = userdata;
        d->starttls++;
}

static const SmtpSessionOps ops = { .commit = op_commit, .starttls = op_starttls };

/* Replaces queue ids by QID, so that runs can be compared. */
static void scrub_ids(char *s) {
        for (char *p = s; *p; p++) {
                size_t n = 0;
                while ((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'A' && p[n] <= 'F'))
                        n++;
                if (n == 20) {
                        memcpy(p, "QID", 3);
                        memmove(p + 3, p + 20, strlen(p + 20) + 1);
                } else if (n > 0)
                        p += n - 1;
        }
}

static int collect(const void *data, size_t len, void *userdata) {
        buf_add(userdata, data, len);
        return 0;
}

/* Takes every queued message out of new/: contents without the Received: header, in id order. */
static void take_queued(Buf *out) {
        char **ids = NULL;
        assert(queue_list(spool, QUEUE_NEW, &ids) == 0);
        for (char **i = ids; *i; i++) {
                QueueFile *f = NULL;
                Buf c = {};
                assert(queue_file_open_id(spool, QUEUE_NEW, *i, O_RDONLY, false, &f) == 0);
                assert(queue_file_read_content(f, collect, &c) == 0);
                buf_add(&c, "", 0);
                const char *body = c.data;
                assert(strncmp(body, "Received: ", 10) == 0);
                body = strchr(body, '\n') + 1;
                while (*body == '\t')
                        body = strchr(body, '\n') + 1;
                char head[128];
                snprintf(head, sizeof head, "[msg from=<%s> rcpts=%zu len=%zu]\n", f->sender, f->n_recipients,
                         c.len - (size_t) (body - c.data));
                buf_add(out, head, strlen(head));
                buf_add(out, body, c.len - (size_t) (body - c.data));
                assert(queue_file_remove(f, spool) == 0);
                queue_file_free(f);
                free(c.data);
        }
        strv_free(ids);
        char **inc = NULL;
        assert(queue_list(spool, QUEUE_INCOMING, &inc) == 0);
        assert(strv_length(inc) == 0);
        strv_free(inc);
}

static void drain(SmtpSession *s, Buf *out) {
        size_t n;
        const void *o = smtp_session_output(s, &n);
        if (n > 0) {
                buf_add(out, o, n);
                smtp_session_output_consumed(s, n);
        }
}

/* chunk: 0 = everything at once, 1 = byte by byte, other = pseudo-random sizes up to that. */
static void run(SmtpSettings *settings, const char *input, size_t len, unsigned chunk, bool immediate,
                Buf *replies, Buf *queued) {
        Driver d = { .immediate = immediate };
        SmtpPeer peer = { .address = "127.0.0.1", .name = "unknown", .in_mynetworks = true };
        SmtpSession *s = NULL;
        unsigned seed = 12345;
        size_t pos = 0;

        assert(smtp_session_new(settings, &peer, &ops, &d, &s) == 0);
        smtp_session_start(s);
        drain(s, replies);
        while (pos < len && !smtp_session_closing(s)) {
                size_t n = len - pos;
                if (chunk == 1)
                        n = 1;
                else if (chunk > 1) {
                        seed = seed * 1103515245 + 12345;
                        size_t k = 1 + (seed >> 8) % chunk;
                        if (k < n)
                                n = k;
                }
                size_t used = smtp_session_feed(s, input + pos, n);
                pos += used;
                drain(s, replies);
                (void) smtp_session_take_tarpit(s);    /* no waiting here */
                if (d.pending) {
                        assert(smtp_session_committing(s));
                        int r = queue_writer_commit(d.pending);
                        d.pending = queue_writer_free(d.pending);
                        smtp_session_commit_done(s, r);
                        drain(s, replies);
                }
                assert(used > 0 || smtp_session_closing(s) || !smtp_session_wants_input(s) || n == 0);
        }
        if (!smtp_session_closing(s))
                smtp_session_eof(s);
        drain(s, replies);
        smtp_session_free(s);
        buf_add(replies, "", 0);
        scrub_ids(replies->data);
        replies->len = strlen(replies->data);
        take_queued(queued);
}

static const char *const scripts[] = {
        /* a plain transaction, pipelined, with a second one behind it */
        "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nDATA\r\n"
        "Subject: one\r\n\r\n..stuffed\r\n.\r\n"
        "MAIL FROM:<>\r\nRCPT TO:<root@mx.test>\r\nRCPT TO:<nosuchuser@mx.test>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n",
        /* smuggling look-alikes: one message only */
        "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nDATA\r\nfirst\n.\nMAIL FROM:<evil@x.test>\r\n"
        "RCPT TO:<root@mx.test>\r\nDATA\r\nevil\r.\rx\r\n.\n\r\n.\r\r\n\r\n.\r\nNOOP\r\n",
        /* long lines, both kinds */
        NULL,   /* filled in by main(): long text and command lines */
        /* BDAT */
        "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nBDAT 7\r\nab\r\ncd\rBDAT 3 LAST\r\n\nef"
        "BDAT 4\r\nQUITNOOP\r\n",
        /* errors and limits */
        "FOO\r\n\r\nMAIL\r\nMAIL FROM:<a@x.test> SIZE=999999999\r\nRCPT TO:<a@b>\r\nEHLO\r\nNO\0OP\r\n"
        "GET / HTTP/1.0\r\nNOOP\r\n",
        /* a message over the size limit, then a good one */
        NULL,
        /* relay from mynetworks, STARTTLS not offered */
        "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<someone@remote.test>\r\nDATA\r\n.\r\nQUIT\r\n",
        /* the client vanishes in DATA */
        "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nDATA\r\nhalf a message\r\n",
};

int main(void) {
        SmtpSettings *settings = NULL;
        Config *c = NULL;
        char *err = NULL;
        char *long_script = NULL, *big_script = NULL;

        log_setup("test-smtp-session", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        assert(mkdtemp(tmpdir));
        snprintf(spool, sizeof spool, "%s/spool", tmpdir);
        assert(config_new_defaults(tmpdir, &c) == 0);
        assert(config_set(c, "queue_directory", spool) == 0);
        assert(config_set(c, "myhostname", "mx.test") == 0);
        assert(config_set(c, "mydestination", "mx.test") == 0);
        assert(config_set(c, "alias_maps", "") == 0);
        assert(config_set(c, "virtual_alias_maps", "") == 0);
        assert(config_set(c, "mynetworks", "127.0.0.0/8") == 0);
        assert(config_set(c, "message_size_limit", "20000") == 0);
        assert(config_set(c, "line_length_limit", "600") == 0);
        assert(config_set(c, "smtpd_hard_error_limit", "100") == 0);
        int r = smtp_settings_new(c, NULL, &settings, &err);
        if (r < 0)
                fprintf(stderr, "settings: %s\n", err ? err : strerror(-r));
        assert(r == 0);
        assert(queue_dirs_ensure(spool) == 0 || (mkdir(spool, 0700) == 0 && queue_dirs_ensure(spool) == 0));

        /* Long lines: a 5000-byte text line, a long line starting with a dot, a 700-byte command. */
        {
                Buf b = {};
                const char *head = "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nDATA\r\n";
                buf_add(&b, head, strlen(head));
                for (int i = 0; i < 5000; i++)
                        buf_add(&b, i % 600 == 599 ? "\r" : "x", 1);
                buf_add(&b, "\r\n..", 4);
                for (int i = 0; i < 1300; i++)
                        buf_add(&b, "y", 1);
                buf_add(&b, "\r\n.\r\nNOOP ", 10);
                for (int i = 0; i < 700; i++)
                        buf_add(&b, "z", 1);
                buf_add(&b, "\r\nNOOP\r\n", 8);
                long_script = b.data;
        }
        {
                Buf b = {};
                const char *head = "EHLO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<root@mx.test>\r\nDATA\r\n";
                buf_add(&b, head, strlen(head));
                for (int i = 0; i < 300; i++)
                        buf_add(&b, "0123456789012345678901234567890123456789012345678901234567890123456789012345\r\n", 78);
                buf_add(&b, ".\r\n", 3);
                buf_add(&b, head + 8, strlen(head + 8));
                buf_add(&b, "small\r\n.\r\n", 10);
                big_script = b.data;
        }

        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                const char *script = scripts[i] ? scripts[i] : i == 2 ? long_script : big_script;
                size_t len = strlen(script);
                if (i == 4)
                        len += strlen(script + len + 1) + 1;   /* the NUL is part of that script */
                Buf ref_r = {}, ref_q = {};
                run(settings, script, len, 0, true, &ref_r, &ref_q);
                unsigned modes[] = { 0, 1, 3, 17, 200 };
                for (size_t m = 0; m < ELEMENTSOF(modes); m++) {
                        Buf rr = {}, qq = {};
                        run(settings, script, len, modes[m], false, &rr, &qq);
                        if (rr.len != ref_r.len || memcmp(rr.data, ref_r.data, rr.len) != 0 || qq.len != ref_q.len ||
                            (qq.len > 0 && memcmp(qq.data, ref_q.data, qq.len) != 0)) {
                                fprintf(stderr, "script %zu chunk %u differs:\n--- whole:\n%s\n%.*s\n--- chunked:\n%s\n%.*s\n",
                                        i, modes[m], ref_r.data, (int) ref_q.len, ref_q.data, rr.data, (int) qq.len,
                                        qq.data);
                                abort();
                        }
                        free(rr.data);
                        free(qq.data);
                }
                /* Properties of the reference runs. */
                if (getenv("SHOW"))
                        fprintf(stderr, "== %zu\n%s\n%.*s\n", i, ref_r.data, (int) ref_q.len, ref_q.data);
                switch (i) {
                case 0:
                        assert(strstr(ref_r.data, "250 2.0.0 Ok: queued as QID\r\n250 2.1.0 Ok\r\n"));
                        assert(strstr(ref_r.data, "550 5.1.1 <nosuchuser@mx.test>: Recipient address rejected"));
                        assert(strstr(ref_q.data, "[msg from=<a@x.test> rcpts=1 len=23]\nSubject: one\n\n.stuffed\n"));
                        assert(strstr(ref_q.data, "[msg from=<> rcpts=1 len=7]\nsecond\n"));
                        break;
                case 1:
                        assert(strstr(ref_q.data, "[msg") == strrchr(ref_q.data, '['));    /* one message */
                        assert(strstr(ref_q.data, "first\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<root@mx.test>\nDATA\n"
                                                  "evil\r.\rx\n.\n\n\r\n\n"));
                        assert(strstr(ref_r.data, "250 2.0.0 Ok: queued as QID\r\n250 2.0.0 Ok\r\n"));
                        break;
                case 2:
                        assert(strstr(ref_r.data, "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"));
                        assert(strstr(ref_q.data, "len=6303]"));
                        break;
                case 3:
                        assert(strstr(ref_r.data, "250 2.0.0 Ok: 7 bytes\r\n250 2.0.0 Ok: queued as QID\r\n"
                                                  "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n"));
                        assert(strstr(ref_q.data, "len=8]\nab\ncd\nef"));
                        break;
                case 4:
                        assert(strstr(ref_r.data, "502 5.5.2 Error: command not recognized\r\n"
                                                  "500 5.5.2 Error: bad syntax\r\n"
                                                  "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
                                                  "552 5.3.4 Message size exceeds fixed limit\r\n"
                                                  "503 5.5.1 Error: need MAIL command\r\n"
                                                  "501 Syntax: EHLO hostname\r\n"
                                                  "500 5.5.2 Error: bad syntax\r\n"
                                                  "221 2.7.0 Error: I can break rules, too. Goodbye.\r\n"));
                        assert(ref_q.len == 0);
                        break;
                case 5:
                        assert(strstr(ref_r.data, "552 5.3.4 Message size exceeds fixed limit\r\n250 2.1.0 Ok\r\n"));
                        assert(strstr(ref_q.data, "[msg from=<a@x.test> rcpts=1 len=6]\nsmall\n"));
                        assert(!strstr(ref_q.data, "0123456789"));
                        break;
                case 6:
                        assert(strstr(ref_r.data, "502 5.5.1 Error: command not implemented\r\n"));
                        assert(strstr(ref_q.data, "[msg from=<a@x.test> rcpts=1 len=0]"));
                        break;
                case 7:
                        assert(ref_q.len == 0);
                        break;
                }
                free(ref_r.data);
                free(ref_q.data);
        }

        free(long_script);
        free(big_script);
        smtp_settings_unref(settings);
        free(err);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmpdir);
        assert(system(cmd) == 0);
        printf("test-smtp-session: ok\n");
        return 0;
}
