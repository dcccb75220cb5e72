/* SPDX-License-Identifier: MIT */
/*
 * A whole SMTP server session driven by fuzz bytes: the first byte picks the peer (in mynetworks or
 * not, local submission) and how STARTTLS ends; the rest is fed as client input in chunks whose
 * sizes come from the input too, so pipelining and split lines are covered. Messages are written to
 * a queue in a temporary directory and dropped without syncing, to keep the fuzzer fast.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "common/queue.h"
#include "services/smtpd/smtp-session.h"
#include "services/smtpd/smtp-settings.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SmtpSettings *settings;
static bool tls_ok;

static void fuzz_commit(SmtpSession *s, QueueWriter *w, void *userdata) {
        /* The session closed the data already; drop the file unsynced (queue_writer_free unlinks). */
        queue_writer_free(w);
        smtp_session_commit_done(s, 0);
}

static void fuzz_starttls(SmtpSession *s, void *userdata) {
        smtp_session_tls_done(s, tls_ok ? "TLSv1.3 with cipher AES-256-GCM" : NULL);
}

static const SmtpSessionOps fuzz_ops = {
        .commit = fuzz_commit,
        .starttls = fuzz_starttls,
};

static void setup(void) {
        static char dir[] = "/tmp/fuzz-smtpd.XXXXXX";
        char path[256];
        FILE *f;
        Config *c = NULL;
        char *error = NULL;

        assert(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/main.cf", dir);
        f = fopen(path, "we");
        assert(f);
        fprintf(f,
                "myhostname = mx.example.test\n"
                "mydestination = $myhostname, localhost, example.test\n"
                "mynetworks = 127.0.0.0/8\n"
                "queue_directory = %s/spool\n"
                "message_size_limit = 4096\n"
                "smtpd_recipient_limit = 5\n"
                "line_length_limit = 256\n"
                "smtpd_hard_error_limit = 8\n"
                "virtual_alias_domains = virtual.test\n"
                "recipient_delimiter = +\n",
                dir);
        fclose(f);
        snprintf(path, sizeof path, "%s/spool", dir);
        assert(mkdir(path, 0700) == 0);
        assert(queue_dirs_ensure(path) == 0);
        assert(config_load(dir, &c, &error) == 0);
        assert(smtp_settings_new(c, NULL, &settings, &error) == 0);
        /* The queue free-space check would turn every MAIL into 452 on a nearly full /tmp. */
        settings->queue_minfree = 0;
}

static void drain(SmtpSession *s) {
        size_t n;
        while (smtp_session_output(s, &n) && n > 0)
                smtp_session_output_consumed(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        SmtpSession *s = NULL;

        if (!settings)
                setup();
        if (size < 2)
                return 0;

        uint8_t mode = data[0], chunk = (uint8_t) (data[1] | 1);
        data += 2;
        size -= 2;
        tls_ok = mode & 4;
        SmtpPeer peer = {
                .address = (mode & 1) ? "127.0.0.1" : "192.0.2.77",
                .name = "unknown",
                .in_mynetworks = mode & 1,
                .local = mode & 2,
                .uid = (mode & 8) ? 0 : 65534,
                .login = (mode & 8) ? "root" : "nobody",
        };
        if (peer.local)
                peer.address = "local";

        assert(smtp_session_new(settings, &peer, &fuzz_ops, NULL, &s) == 0);
        smtp_session_start(s);
        drain(s);
        size_t pos = 0;
        unsigned stalls = 0;
        while (pos < size && !smtp_session_closing(s) && stalls < 4) {
                size_t n = size - pos < chunk ? size - pos : chunk;
                size_t k = smtp_session_feed(s, data + pos, n);
                pos += k;
                stalls = k == 0 ? stalls + 1 : 0;
                drain(s);
        }
        if (!smtp_session_closing(s))
                smtp_session_eof(s);
        drain(s);
        assert(!smtp_session_committing(s));
        smtp_session_free(s);
        return 0;
}
