/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a whole SMTP server session fed from fuzz bytes, the queue writing into a
 * temporary directory. The first byte picks how the rest is cut into reads (as a network would),
 * and every other commit completes only after the next read, as with the committer thread; the
 * second picks the peer (in mynetworks, the local submission socket as root or as a user) and
 * whether a STARTTLS handshake succeeds. Built with -Dfuzz=true (tests/fuzz/run.sh).
 */
#include <assert.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/queue.h"
#include "common/strv.h"
#include "services/smtpd/smtp-session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SmtpSettings *settings;
static char spool[256];

typedef struct Driver {
        QueueWriter *pending;
        bool defer;
        bool tls_pending;
        bool tls_ok;
} Driver;

static void op_commit(SmtpSession *s, QueueWriter *w, void *userdata) {
        Driver *d = userdata;
        if (d->defer) {
                d->pending = w;
                return;
        }
        int r = queue_writer_commit(w);
        queue_writer_free(w);
        smtp_session_commit_done(s, r);
}

static void op_starttls(SmtpSession *s, void *userdata) {
        Driver *d = userdata;
        d->tls_pending = true;      /* completes after the 220 has been "sent", as on a socket */
}

static const SmtpSessionOps ops = { .commit = op_commit, .starttls = op_starttls };

static void setup(void) {
        static char dir[] = "/tmp/fuzz-smtp-session-XXXXXX";
        Config *c = NULL;
        char *err = NULL;

        log_setup("fuzz-smtp-session", LOG_TARGET_STDERR);
        log_set_max_level(LOG_CRIT);
        assert(mkdtemp(dir));
        snprintf(spool, sizeof spool, "%s/spool", dir);
        assert(mkdir(spool, 0700) == 0);
        assert(queue_dirs_ensure(spool) == 0);
        assert(config_new_defaults(dir, &c) == 0);
        assert(config_set(c, "queue_directory", spool) == 0);
        assert(config_set(c, "myhostname", "mx.test") == 0);
        assert(config_set(c, "mydestination", "mx.test") == 0);
        assert(config_set(c, "alias_maps", "") == 0);
        assert(config_set(c, "virtual_alias_maps", "") == 0);
        assert(config_set(c, "message_size_limit", "100000") == 0);
        assert(config_set(c, "line_length_limit", "512") == 0);
        assert(config_set(c, "smtpd_recipient_limit", "20") == 0);
        assert(smtp_settings_new(c, NULL, &settings, &err) == 0);
        free(err);
}

static void clean_queue(void) {
        for (QueueDir d = QUEUE_INCOMING; d <= QUEUE_NEW; d++) {
                char **ids = NULL;
                assert(queue_list(spool, d, &ids) == 0);
                /* Nothing may stay in incoming/ once the session is over. */
                assert(d != QUEUE_INCOMING || !ids[0]);
                for (char **i = ids; *i; i++) {
                        char p[512];
                        snprintf(p, sizeof p, "%s/%s/%s", spool, queue_dir_name(d), *i);
                        QueueFile *f = NULL;
                        /* What we committed must parse. */
                        assert(queue_file_open(p, O_RDONLY, false, &f) == 0);
                        queue_file_free(f);
                        unlink(p);
                }
                strv_free(ids);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Driver d = {};
        SmtpPeer peer = { .address = "192.0.2.1", .name = "unknown" };
        SmtpSession *s = NULL;

        if (!settings)
                setup();
        if (size < 2)
                return 0;
        size_t chunk = 1 + data[0] % 64;
        d.defer = data[0] & 0x80;
        peer.in_mynetworks = data[0] & 0x40;
        d.tls_ok = data[1] & 1;
        if (data[1] & 2) {
                peer.local = true;
                peer.address = "local";
                peer.uid = (data[1] & 4) ? 0 : 65534;
                peer.login = (data[1] & 4) ? "root" : "nobody";
        }
        data += 2;
        size -= 2;

        assert(smtp_session_new(settings, &peer, &ops, &d, &s) == 0);
        smtp_session_start(s);
        size_t pos = 0;
        unsigned stuck = 0;
        while (pos < size && !smtp_session_closing(s)) {
                size_t n = size - pos < chunk ? size - pos : chunk;
                size_t used = smtp_session_feed(s, data + pos, n);
                assert(used <= n);
                pos += used;
                size_t out;
                (void) smtp_session_output(s, &out);
                smtp_session_output_consumed(s, out);
                (void) smtp_session_take_tarpit(s);
                if (d.pending) {
                        int r = queue_writer_commit(d.pending);
                        d.pending = queue_writer_free(d.pending);
                        smtp_session_commit_done(s, r);
                }
                if (d.tls_pending) {
                        d.tls_pending = false;
                        smtp_session_tls_done(s, d.tls_ok ? "TLSv1.3 with cipher AES-256-GCM" : NULL);
                        continue;
                }
                if (used == 0) {
                        assert(++stuck < 4);
                        break;
                }
                stuck = 0;
        }
        smtp_session_eof(s);
        smtp_session_free(s);
        clean_queue();
        return 0;
}
