/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/address.h"
#include "common/log.h"
#include "common/strv.h"
#include "services/smtpd/smtp-session.h"

/* A client that pipelines without reading our replies is stopped here until it reads. */
#define OUTPUT_MAX (64U * 1024U)

typedef enum Mode {
        MODE_COMMAND,
        MODE_DATA,
        MODE_BDAT,
        MODE_TLS_WAIT,
        MODE_CLOSING,
} Mode;

typedef enum VerbId {
        VERB_EHLO,
        VERB_HELO,
        VERB_MAIL,
        VERB_RCPT,
        VERB_DATA,
        VERB_BDAT,
        VERB_RSET,
        VERB_NOOP,
        VERB_QUIT,
        VERB_VRFY,
        VERB_HELP,
        VERB_STARTTLS,
        _VERB_MAX,
        VERB_UNKNOWN = _VERB_MAX,
        _VERB_COUNT_MAX,
} VerbId;

struct SmtpSession {
        SmtpSettings *settings;
        const SmtpSessionOps *ops;
        void *userdata;

        char *address, *name, *client;    /* client = "name[address]" */
        char *login;
        bool in_mynetworks, local;
        uid_t uid;

        Mode mode;
        bool paused;          /* commit in flight */
        bool shutdown;
        bool tarpit;
        uint64_t progress;

        char *out;
        size_t out_len, out_cap;
        int last_code;

        char *line;           /* the unfinished line (commands and DATA) */
        size_t line_len;
        bool line_overflow;   /* discarding the rest of an overlong command line */

        char *helo;
        bool esmtp;
        char *tls_desc;
        unsigned errors;
        unsigned count_ok[_VERB_COUNT_MAX], count_all[_VERB_COUNT_MAX];

        /* the mail transaction */
        bool have_mail;
        char *sender;
        char **rcpts;
        size_t n_rcpts;
        unsigned n_rcpt_tried;
        bool body_8bit, smtputf8;
        uint64_t declared_size;
        QueueWriter *writer;
        char queue_id[QUEUE_ID_MAX];
        uint64_t data_size;
        bool too_big;
        int write_error;
        bool data_bol, data_prev_crlf;

        bool bdat_used, bdat_last, bdat_pending_cr, bdat_fatal;
        uint64_t bdat_remaining, bdat_chunk;
        char *bdat_error;     /* reply owed once the chunk has been read and dropped */
};

static const char *const verb_names[_VERB_COUNT_MAX] = {
        [VERB_EHLO] = "ehlo", [VERB_HELO] = "helo", [VERB_MAIL] = "mail", [VERB_RCPT] = "rcpt",
        [VERB_DATA] = "data", [VERB_BDAT] = "bdat", [VERB_RSET] = "rset", [VERB_NOOP] = "noop",
        [VERB_QUIT] = "quit", [VERB_VRFY] = "vrfy", [VERB_HELP] = "help", [VERB_STARTTLS] = "starttls",
        [VERB_UNKNOWN] = "unknown",
};

static char *mfree_str(char *p) {
        free(p);
        return NULL;
}

/* ---- output ---- */

static void out_append(SmtpSession *s, const char *data, size_t len) {
        if (len > s->out_cap - s->out_len) {
                size_t cap = s->out_cap ? s->out_cap : 256;
                while (cap - s->out_len < len)
                        cap *= 2;
                char *n = realloc(s->out, cap);
                if (!n) {
                        /* Out of memory: the only safe thing is to stop talking. */
                        s->mode = MODE_CLOSING;
                        return;
                }
                s->out = n;
                s->out_cap = cap;
        }
        memcpy(s->out + s->out_len, data, len);
        s->out_len += len;
}

static void reply(SmtpSession *s, const char *fmt, ...) _printf_(2, 3);
static void reply(SmtpSession *s, const char *fmt, ...) {
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t) n > sizeof buf - 3)
                n = (int) sizeof buf - 3;
        buf[n++] = '\r';
        buf[n++] = '\n';
        out_append(s, buf, (size_t) n);
        s->last_code = atoi(buf);
        if ((buf[0] == '4' || buf[0] == '5') && s->last_code != 421) {
                s->errors++;
                if (s->errors > s->settings->soft_error_limit && s->settings->error_sleep_usec > 0)
                        s->tarpit = true;
        }
}

static void close_with(SmtpSession *s, const char *fmt, ...) _printf_(2, 3);
static void close_with(SmtpSession *s, const char *fmt, ...) {
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        (void) vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        reply(s, "%s", buf);
        s->mode = MODE_CLOSING;
}

/* ---- logging ---- */

static void log_reject(SmtpSession *s, const char *stage, const char *rcpt) {
        LogField f[] = {
                { "MTA_CLIENT", s->client },
                { "MTA_SENDER", s->have_mail ? s->sender : NULL },
                { "MTA_RECIPIENT", rcpt },
                { "MTA_STATUS", "rejected" },
        };
        if (s->out_len < 2)
                return;
        /* The reply is the last line of the output, without its CR LF. */
        const char *end = s->out + s->out_len - 2, *start = end;
        while (start > s->out && start[-1] != '\n')
                start--;
        log_event(LOG_INFO, f, ELEMENTSOF(f), "NOQUEUE: reject: %s from %s: %.*s; from=<%s> to=<%s> proto=%s helo=<%s>",
                  stage, s->client, (int) (end - start), start, s->have_mail ? s->sender : "",
                  strempty(rcpt), s->esmtp ? "ESMTP" : "SMTP", strempty(s->helo));
}

/* ---- transaction ---- */

static void transaction_reset(SmtpSession *s) {
        s->have_mail = false;
        s->sender = mfree_str(s->sender);
        s->rcpts = strv_free(s->rcpts);
        s->n_rcpts = 0;
        s->n_rcpt_tried = 0;
        s->body_8bit = s->smtputf8 = false;
        s->declared_size = 0;
        s->writer = queue_writer_free(s->writer);    /* unlinks an unfinished file */
        s->queue_id[0] = 0;
        s->data_size = 0;
        s->too_big = false;
        s->write_error = 0;
        s->bdat_used = s->bdat_last = s->bdat_pending_cr = false;
        s->bdat_remaining = 0;
}

static const char *protocol_name(SmtpSession *s) {
        if (s->local)
                return "LOCAL";
        if (s->tls_desc)
                return s->esmtp ? "ESMTPS" : "SMTPS";
        return s->esmtp ? "ESMTP" : "SMTP";
}

static void data_write(SmtpSession *s, const char *p, size_t len) {
        if (len == 0)
                return;
        s->data_size += len;
        if (s->settings->message_size_limit > 0 && s->data_size > s->settings->message_size_limit)
                s->too_big = true;
        if (s->too_big || s->write_error < 0 || !s->writer)
                return;
        int r = queue_writer_write(s->writer, p, len);
        if (r < 0)
                s->write_error = r;
}

static int message_start(SmtpSession *s) {
        _cleanup_(queue_writer_freep) QueueWriter *w = NULL;
        char date[128];
        _cleanup_free_ char *hdr = NULL;
        struct tm tm;
        time_t now = time(NULL);
        int r;

        r = queue_writer_new(s->settings->queue_dir, &w);
        if (r < 0)
                return r;
        _cleanup_free_ char *esmtp = NULL;
        if (asprintf(&esmtp, "%s%s%s", s->body_8bit ? "BODY=8BITMIME" : "",
                     s->body_8bit && s->smtputf8 ? " " : "", s->smtputf8 ? "SMTPUTF8" : "") < 0)
                return -ENOMEM;
        QueueEnvelopeInfo info = {
                .sender = s->sender,
                .client = s->address,
                .helo = s->helo,
                .protocol = protocol_name(s),
                .user = s->local ? s->login : NULL,
                .esmtp = isempty(esmtp) ? NULL : esmtp,
        };
        r = queue_writer_set_envelope(w, &info, (uint64_t) now);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_rcpts; i++) {
                r = queue_writer_add_recipient(w, s->rcpts[i]);
                if (r < 0)
                        return r;
        }
        strncpy(s->queue_id, queue_writer_id(w), sizeof s->queue_id - 1);

        localtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %e %b %Y %H:%M:%S %z (%Z)", &tm);
        _cleanup_free_ char *forpart = NULL;
        if (s->n_rcpts == 1)
                r = asprintf(&forpart, "\n\tfor <%s>; %s", s->rcpts[0], date);
        else
                r = asprintf(&forpart, ";\n\t%s", date);
        if (r < 0)
                return -ENOMEM;
        if (s->local)
                r = asprintf(&hdr, "Received: by %s (mta, from userid %u)\n\tid %s%s\n", s->settings->hostname,
                             (unsigned) s->uid, s->queue_id, forpart);
        else
                r = asprintf(&hdr, "Received: from %s (%s [%s])\n\tby %s (mta) with %s id %s%s\n",
                             s->helo ? s->helo : s->name, s->name, s->address, s->settings->hostname,
                             protocol_name(s), s->queue_id, forpart);
        if (r < 0)
                return -ENOMEM;
        /* Written straight to the writer: it does not count against the client's size. */
        r = queue_writer_write(w, hdr, strlen(hdr));
        if (r < 0)
                return r;
        s->writer = TAKE_PTR(w);
        s->data_size = 0;
        return 0;
}

static void message_commit(SmtpSession *s) {
        int r;

        if (s->too_big) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                log_reject(s, "END-OF-MESSAGE", NULL);
                transaction_reset(s);
                return;
        }
        r = s->write_error;
        if (r >= 0)
                r = queue_writer_close_data(s->writer);
        if (r < 0) {
                log_full_errno(LOG_ERR, r, "%s: cannot write queue file: %m", s->queue_id);
                reply(s, "451 4.3.0 Error: queue file write error");
                transaction_reset(s);
                return;
        }
        s->paused = true;
        s->ops->commit(s, TAKE_PTR(s->writer), s->userdata);
}

static void maybe_shutdown(SmtpSession *s) {
        if (s->shutdown && s->mode == MODE_COMMAND && !s->paused && !s->have_mail)
                close_with(s, "421 4.3.2 %s Service shutting down", s->settings->hostname);
}

void smtp_session_commit_done(SmtpSession *s, int r) {
        if (!s->paused)
                return;
        s->paused = false;
        if (r < 0) {
                log_full_errno(LOG_ERR, r, "%s: cannot commit queue file: %m", s->queue_id);
                reply(s, "451 4.3.0 Error: queue file write error");
        } else {
                char size[32], nrcpt[32];
                LogField f[3 + 64 + 2];
                size_t n = 0;
                snprintf(size, sizeof size, "%" PRIu64, s->data_size);
                snprintf(nrcpt, sizeof nrcpt, "%zu", s->n_rcpts);
                f[n++] = (LogField) { "MTA_QUEUE_ID", s->queue_id };
                f[n++] = (LogField) { "MTA_CLIENT", s->client };
                f[n++] = (LogField) { "MTA_SENDER", s->sender };
                f[n++] = (LogField) { "MTA_SIZE", size };
                for (size_t i = 0; i < s->n_rcpts && i < 64; i++)
                        f[n++] = (LogField) { "MTA_RECIPIENT", s->rcpts[i] };
                log_event(LOG_INFO, f, n, "%s: client=%s, from=<%s>, size=%s, nrcpt=%s, proto=%s, tls=%s%s%s",
                          s->queue_id, s->client, s->sender, size, nrcpt, protocol_name(s),
                          s->tls_desc ? s->tls_desc : "none", s->local ? ", uid=" : "",
                          s->local ? strempty(s->login) : "");
                reply(s, "250 2.0.0 Ok: queued as %s", s->queue_id);
        }
        transaction_reset(s);
        maybe_shutdown(s);
}

static bool bare_newline_refused(SmtpSession *s) {
        if (!s->settings->bare_newline_reject || s->local || s->in_mynetworks)
                return false;
        LogField f[] = { { "MTA_CLIENT", s->client } };
        log_event(LOG_INFO, f, ELEMENTSOF(f), "disconnect: bare <LF> received from %s", s->client);
        transaction_reset(s);
        close_with(s, "521 5.5.2 %s Error: bare <LF> received", s->settings->hostname);
        return true;
}

/* ---- DATA: streaming, line by line ---- */

/* One piece of a line: the whole line (eol) or, for an overlong line, a part of it. Only
 * <CR><LF>.<CR><LF> ends the message; a line that ended in a bare LF is taken as if it had ended in
 * CR LF (smtpd_forbid_bare_newline = normalize), but it cannot start the end marker. */
static void data_piece(SmtpSession *s, const char *p, size_t len, bool eol) {
        bool crlf = false;

        if (eol && len > 0 && p[len - 1] == '\r') {
                crlf = true;
                len--;
        }
        if (eol && !crlf && bare_newline_refused(s))
                return;
        if (s->data_bol && len > 0 && p[0] == '.') {
                if (eol && len == 1) {
                        if (crlf && s->data_prev_crlf) {
                                s->mode = MODE_COMMAND;
                                message_commit(s);
                                return;
                        }
                        /* a lone dot that is not the end marker is content, kept as it is */
                } else {
                        p++;
                        len--;
                }
        }
        data_write(s, p, len);
        if (eol) {
                data_write(s, "\n", 1);
                s->data_prev_crlf = crlf;
        }
        s->data_bol = eol;
}

static int line_reserve(SmtpSession *s) {
        if (!s->line) {
                s->line = malloc(s->settings->line_length_limit + 2);
                if (!s->line)
                        return -ENOMEM;
        }
        return 0;
}

static size_t feed_data(SmtpSession *s, const char *d, size_t n) {
        size_t limit = s->settings->line_length_limit;
        const char *nl = memchr(d, '\n', n);

        s->progress++;
        if (line_reserve(s) < 0) {
                s->mode = MODE_CLOSING;
                return n;
        }
        if (!nl) {
                size_t left = n;
                while (left > 0) {
                        size_t k = limit - s->line_len < left ? limit - s->line_len : left;
                        memcpy(s->line + s->line_len, d, k);
                        s->line_len += k;
                        d += k;
                        left -= k;
                        if (s->line_len == limit) {
                                /* Split an overlong line, but never between a CR and its LF. */
                                size_t keep = s->line[limit - 1] == '\r' ? 1 : 0;
                                data_piece(s, s->line, limit - keep, false);
                                s->line[0] = '\r';
                                s->line_len = keep;
                        }
                }
                return n;
        }

        size_t seg = (size_t) (nl - d);
        if (s->line_len > 0) {
                if (s->line_len + seg <= limit) {
                        memcpy(s->line + s->line_len, d, seg);
                        size_t l = s->line_len + seg;
                        s->line_len = 0;
                        data_piece(s, s->line, l, true);
                } else {
                        data_piece(s, s->line, s->line_len, false);
                        s->line_len = 0;
                        data_piece(s, d, seg, true);
                }
        } else
                data_piece(s, d, seg, true);
        return seg + 1;
}

/* ---- BDAT ---- */

static void bdat_chunk_done(SmtpSession *s) {
        s->mode = MODE_COMMAND;
        if (s->bdat_error) {
                reply(s, "%s", s->bdat_error);
                s->bdat_error = mfree_str(s->bdat_error);
                if (s->have_mail && s->last_code != 530)
                        log_reject(s, "BDAT", NULL);
                transaction_reset(s);
                return;
        }
        if (s->too_big) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                log_reject(s, "END-OF-MESSAGE", NULL);
                transaction_reset(s);
                return;
        }
        if (s->bdat_last) {
                if (s->bdat_pending_cr) {
                        data_write(s, "\r", 1);
                        s->bdat_pending_cr = false;
                }
                message_commit(s);
                return;
        }
        reply(s, "250 2.0.0 Ok: %" PRIu64 " bytes", s->bdat_chunk);
}

static size_t feed_bdat(SmtpSession *s, const char *d, size_t n) {
        size_t take = s->bdat_remaining < n ? (size_t) s->bdat_remaining : n;

        s->progress++;
        if (!s->bdat_error) {
                /* CR LF becomes LF, as in DATA; no dot handling: the length frames the data. */
                const char *p = d, *end = d + take;
                while (p < end) {
                        if (s->bdat_pending_cr) {
                                s->bdat_pending_cr = false;
                                if (*p != '\n')
                                        data_write(s, "\r", 1);
                        }
                        const char *cr = memchr(p, '\r', (size_t) (end - p));
                        if (!cr) {
                                data_write(s, p, (size_t) (end - p));
                                break;
                        }
                        data_write(s, p, (size_t) (cr - p));
                        p = cr + 1;
                        s->bdat_pending_cr = true;
                }
        }
        s->bdat_remaining -= take;
        if (s->bdat_remaining == 0)
                bdat_chunk_done(s);
        return take;
}

/* ---- commands ---- */

typedef struct Verb {
        const char *name;
        VerbId id;
        bool needs_tls;       /* refused before STARTTLS when smtpd_tls_security_level = encrypt */
        int (*check)(SmtpSession *s, char *arg);       /* < 0: refused, the reply is written */
        void (*proceed)(SmtpSession *s, char *arg);
} Verb;

static int check_helo(SmtpSession *s, char *arg, const char *verb) {
        if (isempty(arg)) {
                reply(s, "501 Syntax: %s hostname", verb);
                return -EINVAL;
        }
        return 0;
}

static int check_ehlo_cmd(SmtpSession *s, char *arg) {
        return check_helo(s, arg, "EHLO");
}

static int check_helo_cmd(SmtpSession *s, char *arg) {
        return check_helo(s, arg, "HELO");
}

static void set_helo(SmtpSession *s, const char *arg, bool esmtp) {
        transaction_reset(s);
        free(s->helo);
        s->helo = strdup(arg);
        s->esmtp = esmtp;
}

static void proceed_ehlo(SmtpSession *s, char *arg) {
        char buf[64];

        set_helo(s, arg, true);
        reply(s, "250-%s", s->settings->hostname);
        reply(s, "250-PIPELINING");
        if (s->settings->message_size_limit > 0) {
                snprintf(buf, sizeof buf, "250-SIZE %" PRIu64, s->settings->message_size_limit);
                reply(s, "%s", buf);
        } else
                reply(s, "250-SIZE");
        reply(s, "250-VRFY");
        if (s->settings->tls && !s->tls_desc && !s->local)
                reply(s, "250-STARTTLS");
        reply(s, "250-ENHANCEDSTATUSCODES");
        reply(s, "250-8BITMIME");
        reply(s, "250-SMTPUTF8");
        reply(s, "250 CHUNKING");
}

static void proceed_helo(SmtpSession *s, char *arg) {
        set_helo(s, arg, false);
        reply(s, "250 %s", s->settings->hostname);
}

static bool prefix_nocase(const char *s, const char *prefix, char **ret_rest) {
        size_t n = strlen(prefix);
        if (strncasecmp(s, prefix, n) != 0)
                return false;
        *ret_rest = (char *) s + n;
        return true;
}

static bool sender_owned(SmtpSession *s, const char *addr) {
        if (!s->local || s->uid == 0 || s->uid == s->settings->mail_owner_uid)
                return true;
        if (!s->login)
                return false;
        size_t l = strlen(s->login);
        if (strcasecmp(addr, s->login) == 0)
                return true;
        return strncmp(addr, s->login, l) == 0 && addr[l] == '@' && strcasecmp(addr + l + 1, s->settings->myorigin) == 0;
}

static bool storage_ok(SmtpSession *s) {
        struct statvfs v;
        if (statvfs(s->settings->queue_dir, &v) < 0)
                return true;     /* the write will tell */
        uint64_t free_bytes = (uint64_t) v.f_bavail * (uint64_t) v.f_frsize;
        uint64_t need = s->settings->queue_minfree;
        uint64_t margin = s->settings->message_size_limit + s->settings->message_size_limit / 2;
        if (margin > need)
                need = margin;
        return free_bytes >= need + s->declared_size && free_bytes > 0;
}

static int check_mail(SmtpSession *s, char *arg) {
        _cleanup_free_ char *addr = NULL;
        const char *params;
        char *rest;
        if (s->settings->helo_required && !s->helo) {
                reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                return -EINVAL;
        }
        if (s->have_mail) {
                reply(s, "503 5.5.1 Error: nested MAIL command");
                return -EINVAL;
        }
        if (!prefix_nocase(arg, "FROM:", &rest)) {
                reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
                return -EINVAL;
        }
        if (address_parse_path(rest, &addr, &params) < 0) {
                reply(s, "501 5.1.7 Bad sender address syntax");
                return -EINVAL;
        }

        bool body_8bit = false, smtputf8 = false;
        uint64_t size = 0;
        _cleanup_free_ char *pcopy = strdup(params);
        if (!pcopy)
                return -ENOMEM;
        for (char *save = NULL, *p = strtok_r(pcopy, " \t", &save); p; p = strtok_r(NULL, " \t", &save)) {
                char *v;
                if (prefix_nocase(p, "SIZE=", &v)) {
                        char *end;
                        errno = 0;
                        if (!isdigit((unsigned char) *v) || (size = strtoull(v, &end, 10), errno != 0) || *end) {
                                reply(s, "501 5.5.4 Bad message size syntax");
                                return -EINVAL;
                        }
                } else if (prefix_nocase(p, "BODY=", &v)) {
                        if (strcaseeq(v, "8BITMIME"))
                                body_8bit = true;
                        else if (!strcaseeq(v, "7BIT")) {
                                reply(s, "501 5.5.4 Bad BODY keyword syntax");
                                return -EINVAL;
                        }
                } else if (strcaseeq(p, "SMTPUTF8"))
                        smtputf8 = true;
                else {
                        reply(s, "555 5.5.4 Unsupported option: %s", p);
                        return -EINVAL;
                }
        }
        if (s->settings->message_size_limit > 0 && size > s->settings->message_size_limit) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                log_reject(s, "MAIL", NULL);
                return -EFBIG;
        }
        s->declared_size = size;
        if (!storage_ok(s)) {
                s->declared_size = 0;
                reply(s, "452 4.3.1 Insufficient system storage");
                log_reject(s, "MAIL", NULL);
                return -ENOSPC;
        }
        if (!sender_owned(s, addr)) {
                reply(s, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", addr,
                      s->login ? s->login : "(unknown)");
                log_reject(s, "MAIL", NULL);
                return -EPERM;
        }
        s->body_8bit = body_8bit;
        s->smtputf8 = smtputf8;
        s->sender = TAKE_PTR(addr);
        return 0;
}

static void proceed_mail(SmtpSession *s, char *arg) {
        s->have_mail = true;
        reply(s, "250 2.1.0 Ok");
}

static int check_rcpt(SmtpSession *s, char *arg) {
        _cleanup_free_ char *addr = NULL;
        const char *params;
        char *rest;
        RecipientCheck rc;
        int r;

        if (!s->have_mail) {
                reply(s, "503 5.5.1 Error: need MAIL command");
                return -EINVAL;
        }
        if (!prefix_nocase(arg, "TO:", &rest)) {
                reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
                return -EINVAL;
        }
        s->n_rcpt_tried++;
        if (address_parse_path(rest, &addr, &params) < 0 || isempty(addr)) {
                reply(s, "501 5.1.3 Bad recipient address syntax");
                return -EINVAL;
        }
        if (!isempty(params)) {
                reply(s, "555 5.5.4 Unsupported option: %s", params);
                return -EINVAL;
        }
        if (s->n_rcpts >= s->settings->recipient_limit) {
                reply(s, "452 4.5.3 Error: too many recipients");
                log_reject(s, "RCPT", addr);
                return -E2BIG;
        }
        r = resolver_check_recipient(s->settings->resolver, addr, &rc);
        if (r < 0) {
                reply(s, "451 4.3.0 <%s>: Temporary lookup failure", addr);
                log_reject(s, "RCPT", addr);
                return r;
        }
        switch (rc) {
        case RECIPIENT_LOCAL_OK:
        case RECIPIENT_VIRTUAL_OK:
                break;
        case RECIPIENT_LOCAL_UNKNOWN:
                reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table", addr);
                log_reject(s, "RCPT", addr);
                return -ENOENT;
        case RECIPIENT_VIRTUAL_UNKNOWN:
                reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual alias table", addr);
                log_reject(s, "RCPT", addr);
                return -ENOENT;
        case RECIPIENT_REMOTE:
                if (s->local || (s->settings->permit_mynetworks && s->in_mynetworks))
                        break;
                if (s->settings->relay_deny == RELAY_REJECT)
                        reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
                else
                        reply(s, "454 4.7.1 <%s>: Relay access denied", addr);
                log_reject(s, "RCPT", addr);
                return -EACCES;
        }
        r = strv_push(&s->rcpts, TAKE_PTR(addr));
        if (r < 0)
                return r;
        s->n_rcpts++;
        return 0;
}

static void proceed_rcpt(SmtpSession *s, char *arg) {
        reply(s, "250 2.1.5 Ok");
}

static int check_transaction_ready(SmtpSession *s) {
        if (!s->have_mail) {
                reply(s, "503 5.5.1 Error: need MAIL command");
                return -EINVAL;
        }
        if (s->n_rcpts == 0) {
                if (s->n_rcpt_tried > 0)
                        reply(s, "554 5.5.1 Error: no valid recipients");
                else
                        reply(s, "503 5.5.1 Error: need RCPT command");
                return -EINVAL;
        }
        return 0;
}

static int check_data(SmtpSession *s, char *arg) {
        int r;

        if (!isempty(arg)) {
                reply(s, "501 5.5.4 Syntax: DATA");
                return -EINVAL;
        }
        r = check_transaction_ready(s);
        if (r < 0)
                return r;
        if (s->bdat_used) {
                reply(s, "503 5.5.1 Error: DATA after BDAT");
                return -EINVAL;
        }
        r = message_start(s);
        if (r < 0) {
                log_full_errno(LOG_ERR, r, "Cannot create queue file in %s: %m", s->settings->queue_dir);
                if (r == -ENOSPC || r == -EDQUOT)
                        reply(s, "452 4.3.1 Insufficient system storage");
                else
                        reply(s, "451 4.3.0 Error: queue file write error");
                return r;
        }
        return 0;
}

static void proceed_data(SmtpSession *s, char *arg) {
        reply(s, "354 End data with <CR><LF>.<CR><LF>");
        s->mode = MODE_DATA;
        s->data_bol = true;
        s->data_prev_crlf = true;
        s->line_len = 0;
}

static int check_bdat(SmtpSession *s, char *arg) {
        char *end;
        uint64_t size;

        if (!isdigit((unsigned char) arg[0]))
                goto syntax;
        errno = 0;
        size = strtoull(arg, &end, 10);
        if (errno != 0)
                goto syntax;
        while (*end == ' ' || *end == '\t')
                end++;
        bool last = false;
        if (strcaseeq(end, "LAST"))
                last = true;
        else if (*end)
                goto syntax;

        /* From here the chunk is always read (and dropped when refused), so its bytes can never be
         * taken as commands. */
        s->bdat_remaining = size;
        s->bdat_chunk = size;
        s->bdat_last = last;
        free(s->bdat_error);
        s->bdat_error = NULL;
        if (s->settings->tls_level == TLS_LEVEL_ENCRYPT && !s->tls_desc && !s->local)
                s->bdat_error = strdup("530 5.7.0 Must issue a STARTTLS command first");
        else if (!s->have_mail)
                s->bdat_error = strdup("503 5.5.1 Error: need MAIL command");
        else if (s->n_rcpts == 0)
                s->bdat_error = strdup(s->n_rcpt_tried > 0 ? "554 5.5.1 Error: no valid recipients"
                                                           : "503 5.5.1 Error: need RCPT command");
        else if (!s->writer) {
                int r = message_start(s);
                if (r < 0) {
                        log_full_errno(LOG_ERR, r, "Cannot create queue file in %s: %m", s->settings->queue_dir);
                        s->bdat_error = strdup(r == -ENOSPC || r == -EDQUOT ? "452 4.3.1 Insufficient system storage"
                                                                           : "451 4.3.0 Error: queue file write error");
                }
        }
        if (s->have_mail && !s->bdat_error)
                s->bdat_used = true;
        return 0;

syntax:
        /* Without a length we cannot tell where the chunk ends: stop here. */
        reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
        s->mode = MODE_CLOSING;
        return -EINVAL;
}

static void proceed_bdat(SmtpSession *s, char *arg) {
        s->mode = MODE_BDAT;
        if (s->bdat_remaining == 0)
                bdat_chunk_done(s);
}

static int check_no_arg(SmtpSession *s, char *arg, const char *verb) {
        if (!isempty(arg)) {
                reply(s, "501 5.5.4 Syntax: %s", verb);
                return -EINVAL;
        }
        return 0;
}

static int check_rset(SmtpSession *s, char *arg) {
        return check_no_arg(s, arg, "RSET");
}

static void proceed_rset(SmtpSession *s, char *arg) {
        transaction_reset(s);
        reply(s, "250 2.0.0 Ok");
}

static int check_none(SmtpSession *s, char *arg) {
        return 0;
}

static void proceed_noop(SmtpSession *s, char *arg) {
        reply(s, "250 2.0.0 Ok");
}

static void proceed_quit(SmtpSession *s, char *arg) {
        close_with(s, "221 2.0.0 %s", "Bye");
}

static int check_vrfy(SmtpSession *s, char *arg) {
        if (isempty(arg)) {
                reply(s, "501 5.5.4 Syntax: VRFY address");
                return -EINVAL;
        }
        return 0;
}

static void proceed_vrfy(SmtpSession *s, char *arg) {
        /* No address disclosure: the same answer for every address. */
        reply(s, "252 2.0.0 Send some mail, I'll try my best");
}

static void proceed_help(SmtpSession *s, char *arg) {
        reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
}

static int check_starttls(SmtpSession *s, char *arg) {
        if (!isempty(arg)) {
                reply(s, "501 5.5.4 Syntax: STARTTLS");
                return -EINVAL;
        }
        if (s->tls_desc) {
                reply(s, "554 5.5.1 Error: TLS already active");
                return -EINVAL;
        }
        if (!s->settings->tls || s->local) {
                reply(s, "502 5.5.1 Error: command not implemented");
                return -EINVAL;
        }
        if (s->have_mail) {
                reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return -EINVAL;
        }
        return 0;
}

static void proceed_starttls(SmtpSession *s, char *arg) {
        reply(s, "220 2.0.0 Ready to start TLS");
        /* Whatever the client sent after STARTTLS in clear text is dropped, never run after the
         * handshake (CVE-2011-0411). */
        s->mode = MODE_TLS_WAIT;
        s->line_len = 0;
        s->ops->starttls(s, s->userdata);
}

static const Verb verbs[] = {
        { "EHLO", VERB_EHLO, false, check_ehlo_cmd, proceed_ehlo },
        { "HELO", VERB_HELO, false, check_helo_cmd, proceed_helo },
        { "MAIL", VERB_MAIL, true, check_mail, proceed_mail },
        { "RCPT", VERB_RCPT, true, check_rcpt, proceed_rcpt },
        { "DATA", VERB_DATA, true, check_data, proceed_data },
        { "BDAT", VERB_BDAT, false, check_bdat, proceed_bdat },   /* refused after reading, see check_bdat */
        { "RSET", VERB_RSET, false, check_rset, proceed_rset },
        { "NOOP", VERB_NOOP, false, check_none, proceed_noop },
        { "QUIT", VERB_QUIT, false, check_none, proceed_quit },
        { "VRFY", VERB_VRFY, true, check_vrfy, proceed_vrfy },
        { "HELP", VERB_HELP, false, check_none, proceed_help },
        { "STARTTLS", VERB_STARTTLS, false, check_starttls, proceed_starttls },
};

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t len) {
        for (size_t i = 0; i < len;) {
                unsigned char c = p[i];
                size_t n;
                uint32_t cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        n = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        n = 3, cp = c & 0x07;
                else
                        return false;
                if (len - i - 1 < n)
                        return false;
                for (size_t k = 1; k <= n; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}

static void execute(SmtpSession *s, char *line, size_t len) {
        s->progress++;

        if (s->errors >= s->settings->hard_error_limit) {
                close_with(s, "421 4.7.0 %s Error: too many errors", s->settings->hostname);
                return;
        }
        /* No NUL or other control character has any business in a command line. */
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) line[i] < 0x20 ? line[i] != '\t' : line[i] == 0x7f) {
                        s->count_all[VERB_UNKNOWN]++;
                        reply(s, "500 5.5.2 Error: bad syntax");
                        return;
                }
        /* 8-bit commands must be UTF-8 (SMTPUTF8), as Postfix with smtputf8_enable = yes. */
        if (!utf8_valid((const unsigned char *) line, len)) {
                s->count_all[VERB_UNKNOWN]++;
                reply(s, "500 5.5.2 Error: bad UTF-8 syntax");
                return;
        }
        char *arg = line;
        while (*arg && *arg != ' ' && *arg != '\t')
                arg++;
        size_t vlen = (size_t) (arg - line);
        while (*arg == ' ' || *arg == '\t')
                arg++;
        /* Trailing white space is not part of an argument. */
        for (char *e = arg + strlen(arg); e > arg && (e[-1] == ' ' || e[-1] == '\t'); e--)
                e[-1] = 0;

        if (vlen == 0) {
                s->count_all[VERB_UNKNOWN]++;
                reply(s, "500 5.5.2 Error: bad syntax");
                return;
        }
        /* Postfix's smtpd_forbidden_commands: a web client or proxy probe is not an SMTP client. */
        if ((vlen == 7 && strncasecmp(line, "CONNECT", 7) == 0) || (vlen == 3 && strncasecmp(line, "GET", 3) == 0) ||
            (vlen == 4 && strncasecmp(line, "POST", 4) == 0) || !isalpha((unsigned char) line[0])) {
                close_with(s, "221 2.7.0 Error: I can break rules, too. %s", "Goodbye.");
                return;
        }

        const Verb *v = NULL;
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (strlen(verbs[i].name) == vlen && strncasecmp(verbs[i].name, line, vlen) == 0) {
                        v = &verbs[i];
                        break;
                }
        if (!v) {
                s->count_all[VERB_UNKNOWN]++;
                reply(s, "502 5.5.2 Error: command not recognized");
                return;
        }
        s->count_all[v->id]++;
        if (v->needs_tls && s->settings->tls_level == TLS_LEVEL_ENCRYPT && !s->tls_desc && !s->local) {
                reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                return;
        }
        if (v->check(s, arg) < 0)
                return;
        v->proceed(s, arg);
        if (s->last_code < 400)
                s->count_ok[v->id]++;
}

static size_t feed_command(SmtpSession *s, const char *d, size_t n) {
        size_t limit = s->settings->line_length_limit;
        const char *nl = memchr(d, '\n', n);
        size_t take = nl ? (size_t) (nl - d) + 1 : n;
        size_t seg = nl ? (size_t) (nl - d) : n;

        if (s->line_overflow) {
                if (nl)
                        s->line_overflow = false;
                return take;
        }
        /* The limit counts the line without its CR LF; the CR gets one byte of slack. */
        if (s->line_len + seg > limit + 1) {
                s->count_all[VERB_UNKNOWN]++;
                reply(s, "500 5.5.2 Error: line too long");
                s->line_len = 0;
                s->line_overflow = !nl;
                s->progress++;
                return take;
        }
        if (line_reserve(s) < 0) {
                s->mode = MODE_CLOSING;
                return n;
        }
        memcpy(s->line + s->line_len, d, seg);
        s->line_len += seg;
        if (!nl)
                return take;

        size_t l = s->line_len;
        bool crlf = l > 0 && s->line[l - 1] == '\r';
        if (crlf)
                l--;
        s->line[l] = 0;
        s->line_len = 0;
        if (!crlf && bare_newline_refused(s))
                return take;
        if (l > limit) {
                s->count_all[VERB_UNKNOWN]++;
                s->progress++;
                reply(s, "500 5.5.2 Error: line too long");
                return take;
        }
        execute(s, s->line, l);
        maybe_shutdown(s);
        return take;
}

size_t smtp_session_feed(SmtpSession *s, const void *data, size_t len) {
        const char *d = data;
        size_t pos = 0;

        while (pos < len) {
                if (s->paused || s->tarpit || s->out_len >= OUTPUT_MAX)
                        break;
                switch (s->mode) {
                case MODE_COMMAND:
                        pos += feed_command(s, d + pos, len - pos);
                        break;
                case MODE_DATA:
                        pos += feed_data(s, d + pos, len - pos);
                        break;
                case MODE_BDAT:
                        pos += feed_bdat(s, d + pos, len - pos);
                        break;
                case MODE_TLS_WAIT:
                case MODE_CLOSING:
                        pos = len;
                        break;
                }
        }
        /* An idle session keeps no line buffer. */
        if (s->line_len == 0 && s->line) {
                free(s->line);
                s->line = NULL;
        }
        return pos;
}

/* ---- life cycle ---- */

int smtp_session_new(SmtpSettings *settings, const SmtpPeer *peer, const SmtpSessionOps *ops, void *userdata,
                     SmtpSession **ret) {
        SmtpSession *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->settings = smtp_settings_ref(settings);
        s->ops = ops;
        s->userdata = userdata;
        s->address = strdup(peer->address ? peer->address : "unknown");
        s->name = strdup(peer->name ? peer->name : "unknown");
        s->login = peer->login ? strdup(peer->login) : NULL;
        s->in_mynetworks = peer->in_mynetworks;
        s->local = peer->local;
        s->uid = peer->uid;
        if (!s->address || !s->name || (peer->login && !s->login) ||
            asprintf(&s->client, "%s[%s]", s->name, s->address) < 0) {
                s->client = NULL;
                smtp_session_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

SmtpSession *smtp_session_free(SmtpSession *s) {
        char counts[512];
        size_t n = 0;
        unsigned total = 0, total_ok = 0;

        if (!s)
                return NULL;
        for (VerbId v = 0; v < _VERB_COUNT_MAX; v++) {
                if (s->count_all[v] == 0)
                        continue;
                total += s->count_all[v];
                total_ok += s->count_ok[v];
                if (n < sizeof counts) {
                        int k;
                        if (s->count_ok[v] == s->count_all[v])
                                k = snprintf(counts + n, sizeof counts - n, " %s=%u", verb_names[v], s->count_all[v]);
                        else
                                k = snprintf(counts + n, sizeof counts - n, " %s=%u/%u", verb_names[v],
                                             s->count_ok[v], s->count_all[v]);
                        if (k > 0)
                                n += (size_t) k;
                }
        }
        counts[n < sizeof counts ? n : sizeof counts - 1] = 0;
        if (s->client) {
                LogField f[] = { { "MTA_CLIENT", s->client } };
                if (total_ok == total)
                        log_event(LOG_INFO, f, ELEMENTSOF(f), "disconnect from %s%s commands=%u", s->client,
                                  counts, total);
                else
                        log_event(LOG_INFO, f, ELEMENTSOF(f), "disconnect from %s%s commands=%u/%u", s->client,
                                  counts, total_ok, total);
        }
        transaction_reset(s);
        smtp_settings_unref(s->settings);
        free(s->address);
        free(s->name);
        free(s->client);
        free(s->login);
        free(s->out);
        free(s->line);
        free(s->helo);
        free(s->tls_desc);
        free(s->bdat_error);
        free(s);
        return NULL;
}

void smtp_session_start(SmtpSession *s) {
        LogField f[] = { { "MTA_CLIENT", s->client } };
        log_event(LOG_INFO, f, ELEMENTSOF(f), "connect from %s%s%s", s->client, s->local ? " uid=" : "",
                  s->local ? strempty(s->login) : "");
        reply(s, "220 %s", s->settings->banner);
}

void smtp_session_start_refused(SmtpSession *s, const char *why) {
        LogField f[] = { { "MTA_CLIENT", s->client }, { "MTA_STATUS", "rejected" } };
        log_event(LOG_WARNING, f, ELEMENTSOF(f), "refused connection from %s: %s", s->client, why);
        close_with(s, "421 4.7.0 %s Error: %s", s->settings->hostname, why);
}

void smtp_session_eof(SmtpSession *s) {
        if (s->writer || s->mode == MODE_DATA || s->mode == MODE_BDAT) {
                LogField f[] = { { "MTA_CLIENT", s->client } };
                log_event(LOG_INFO, f, ELEMENTSOF(f), "lost connection after %s from %s",
                          s->mode == MODE_BDAT ? "BDAT" : "DATA", s->client);
        }
        transaction_reset(s);
        s->mode = MODE_CLOSING;
}

void smtp_session_timeout(SmtpSession *s) {
        if (s->paused || s->mode == MODE_CLOSING)
                return;
        LogField f[] = { { "MTA_CLIENT", s->client } };
        log_event(LOG_INFO, f, ELEMENTSOF(f), "timeout after %s from %s",
                  s->mode == MODE_DATA ? "DATA" : s->mode == MODE_BDAT ? "BDAT" : "command", s->client);
        transaction_reset(s);
        close_with(s, "421 4.4.2 %s Error: timeout exceeded", s->settings->hostname);
}

void smtp_session_shutdown(SmtpSession *s) {
        s->shutdown = true;
        if (s->mode == MODE_TLS_WAIT) {
                s->mode = MODE_CLOSING;
                return;
        }
        maybe_shutdown(s);
}

void smtp_session_tls_done(SmtpSession *s, const char *tls_desc) {
        if (!tls_desc) {
                LogField f[] = { { "MTA_CLIENT", s->client } };
                log_event(LOG_INFO, f, ELEMENTSOF(f), "TLS handshake failed for %s", s->client);
                s->mode = MODE_CLOSING;
                return;
        }
        free(s->tls_desc);
        s->tls_desc = strdup(tls_desc);
        if (!s->tls_desc) {
                s->mode = MODE_CLOSING;
                return;
        }
        /* RFC 3207: everything learnt before the handshake is forgotten. */
        transaction_reset(s);
        s->helo = mfree_str(s->helo);
        s->esmtp = false;
        s->line_len = 0;
        s->line_overflow = false;
        s->mode = MODE_COMMAND;
        maybe_shutdown(s);
}

const void *smtp_session_output(SmtpSession *s, size_t *ret_len) {
        *ret_len = s->out_len;
        return s->out;
}

void smtp_session_output_consumed(SmtpSession *s, size_t n) {
        if (n >= s->out_len) {
                /* Idle sessions hold no output buffer. */
                free(s->out);
                s->out = NULL;
                s->out_len = s->out_cap = 0;
                return;
        }
        memmove(s->out, s->out + n, s->out_len - n);
        s->out_len -= n;
}

bool smtp_session_take_tarpit(SmtpSession *s) {
        bool t = s->tarpit;
        s->tarpit = false;
        return t;
}

bool smtp_session_wants_input(const SmtpSession *s) {
        return !s->paused && !s->tarpit && s->out_len < OUTPUT_MAX && s->mode != MODE_CLOSING && s->mode != MODE_TLS_WAIT;
}

bool smtp_session_closing(const SmtpSession *s) {
        return s->mode == MODE_CLOSING;
}

bool smtp_session_committing(const SmtpSession *s) {
        return s->paused;
}

uint64_t smtp_session_progress(const SmtpSession *s) {
        return s->progress;
}
