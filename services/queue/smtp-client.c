/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>


#include "common/log.h"
#include "common/macro.h"
#include "common/strv.h"
#include "common/tls-lib.h"
#include "services/queue/smtp-client.h"

#define LINE_MAX_BYTES 8192
#define OUT_BUF 65536

static inline void *mfree_ptr(void *p) {
        free(p);
        return NULL;
}

int tls_level_from_string(const char *s, TlsLevel *ret) {
        if (isempty(s) || strcaseeq(s, "none"))
                *ret = TLS_LEVEL_NONE;
        else if (strcaseeq(s, "may"))
                *ret = TLS_LEVEL_MAY;
        else if (strcaseeq(s, "encrypt") || strcaseeq(s, "dane") || strcaseeq(s, "dane-only") ||
                 strcaseeq(s, "verify") || strcaseeq(s, "secure") || strcaseeq(s, "fingerprint"))
                *ret = TLS_LEVEL_ENCRYPT;
        else
                return -EINVAL;
        return 0;
}

void smtp_recipient_done(SmtpRecipient *r) {
        r->reply = mfree_ptr(r->reply);
        r->detail = mfree_ptr(r->detail);
}

int smtp_target_address(const SmtpTarget *t, char *buf, size_t size, unsigned *ret_port) {
        const void *a;
        unsigned port;
        if (t->addr.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) &t->addr;
                a = &in->sin_addr;
                port = ntohs(in->sin_port);
        } else if (t->addr.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &t->addr;
                a = &in6->sin6_addr;
                port = ntohs(in6->sin6_port);
        } else
                return -EAFNOSUPPORT;
        if (!inet_ntop(t->addr.ss_family, a, buf, (socklen_t) size))
                return negative_errno();
        if (ret_port)
                *ret_port = port;
        return 0;
}

typedef struct Conn {
        int fd;
        gnutls_session_t tls;
        gnutls_certificate_credentials_t cred;
        char in[LINE_MAX_BYTES * 2];
        size_t in_start, in_end;
        char out[OUT_BUF];
        size_t out_len;
        bool broken;
        unsigned rcv_timeout;
        char host[512];            /* "host[ip]" */
        char relay[600];           /* "host[ip]:port" */
        const char *destination;
        char *destination_owned;
        const SmtpClientConfig *cfg;
} Conn;

static void conn_close(Conn *c) {
        if (c->tls) {
                sym_gnutls_deinit(c->tls);
                c->tls = NULL;
        }
        if (c->cred) {
                sym_gnutls_certificate_free_credentials(c->cred);
                c->cred = NULL;
        }
        c->fd = safe_close(c->fd);
        c->in_start = c->in_end = c->out_len = 0;
}

static void set_timeout(Conn *c, int optname, unsigned seconds) {
        if (optname == SO_RCVTIMEO)
                c->rcv_timeout = seconds > 0 ? seconds : 1;
        struct timeval tv = { .tv_sec = seconds > 0 ? seconds : 1 };
        (void) setsockopt(c->fd, SOL_SOCKET, optname, &tv, sizeof tv);
}

static int conn_connect(Conn *c, const SmtpTarget *t) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (const struct sockaddr *) &t->addr, t->addr_len) < 0) {
                if (errno != EINPROGRESS)
                        return negative_errno();
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                do
                        r = poll(&p, 1, (int) c->cfg->connect_timeout * 1000);
                while (r < 0 && errno == EINTR);
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        return -ETIMEDOUT;
                int err = 0;
                socklen_t l = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
                        return negative_errno();
                if (err != 0)
                        return -err;
        }
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return negative_errno();
        c->fd = TAKE_FD(fd);
        return 0;
}

static ssize_t conn_raw_read(Conn *c, void *buf, size_t n) {
        if (c->tls) {
                ssize_t k;
                for (;;) {
                        k = sym_gnutls_record_recv(c->tls, buf, n);
                        if (k == GNUTLS_E_INTERRUPTED)
                                continue;
                        if (k != GNUTLS_E_AGAIN)
                                break;
                        /* GnuTLS also says "again" after a post-handshake message (a TLS 1.3 session
                         * ticket) on a blocking socket: only a silent socket is a timeout. */
                        struct pollfd p = { .fd = c->fd, .events = POLLIN };
                        int r = poll(&p, 1, (int) c->rcv_timeout * 1000);
                        if (r == 0)
                                return -ETIMEDOUT;
                        if (r < 0 && errno != EINTR)
                                return negative_errno();
                }
                if (k < 0)
                        log_debug("TLS read from %s: %s", c->host, sym_gnutls_strerror((int) k));
                if (k == GNUTLS_E_PREMATURE_TERMINATION)
                        return 0;
                if (k < 0)
                        return -ECONNRESET;
                return k;
        }
        ssize_t k;
        do
                k = read(c->fd, buf, n);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : negative_errno();
        return k;
}

static int conn_raw_write(Conn *c, const void *buf, size_t n) {
        const char *p = buf;
        while (n > 0) {
                ssize_t k;
                if (c->tls) {
                        do
                                k = sym_gnutls_record_send(c->tls, p, n);
                        while (k == GNUTLS_E_INTERRUPTED);
                        if (k == GNUTLS_E_AGAIN)
                                return -ETIMEDOUT;
                        if (k < 0)
                                return -ECONNRESET;
                } else {
                        do
                                k = send(c->fd, p, n, MSG_NOSIGNAL);
                        while (k < 0 && errno == EINTR);
                        if (k < 0)
                                return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT
                                                                                : negative_errno();
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int conn_flush(Conn *c) {
        if (c->out_len == 0)
                return 0;
        int r = conn_raw_write(c, c->out, c->out_len);
        c->out_len = 0;
        if (r < 0)
                c->broken = true;
        return r;
}

static int conn_write(Conn *c, const void *data, size_t n) {
        const char *p = data;
        while (n > 0) {
                if (c->out_len == sizeof c->out) {
                        int r = conn_flush(c);
                        if (r < 0)
                                return r;
                }
                size_t k = n < sizeof c->out - c->out_len ? n : sizeof c->out - c->out_len;
                memcpy(c->out + c->out_len, p, k);
                c->out_len += k;
                p += k;
                n -= k;
        }
        return 0;
}

/* Reads one line (without CRLF) into buf. */
static int conn_read_line(Conn *c, char *buf, size_t size, size_t *ret_len) {
        for (;;) {
                char *nl = memchr(c->in + c->in_start, '\n', c->in_end - c->in_start);
                if (nl) {
                        size_t n = (size_t) (nl - (c->in + c->in_start));
                        size_t k = n;
                        if (k > 0 && c->in[c->in_start + k - 1] == '\r')
                                k--;
                        if (k >= size)
                                k = size - 1;
                        memcpy(buf, c->in + c->in_start, k);
                        buf[k] = 0;
                        c->in_start += n + 1;
                        *ret_len = k;
                        return 0;
                }
                if (c->in_end - c->in_start >= LINE_MAX_BYTES) {
                        c->broken = true;
                        return -E2BIG;
                }
                if (c->in_start > 0) {
                        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
                        c->in_end -= c->in_start;
                        c->in_start = 0;
                }
                ssize_t k = conn_raw_read(c, c->in + c->in_end, sizeof c->in - c->in_end);
                if (k < 0) {
                        c->broken = true;
                        return (int) k;
                }
                if (k == 0) {
                        c->broken = true;
                        return -ECONNRESET;
                }
                c->in_end += (size_t) k;
        }
}

static int conn_read_reply(Conn *c, unsigned timeout, SmtpReply *reply) {
        char line[LINE_MAX_BYTES];
        size_t len;
        int r;

        smtp_reply_done(reply);
        if (conn_flush(c) < 0)
                return -ECONNRESET;
        set_timeout(c, SO_RCVTIMEO, timeout);
        for (;;) {
                r = conn_read_line(c, line, sizeof line, &len);
                if (r < 0)
                        return r;
                r = smtp_reply_feed(reply, line, len);
                if (r < 0) {
                        c->broken = true;
                        return r;
                }
                if (r > 0)
                        return 0;
        }
}

static int conn_command(Conn *c, unsigned timeout, SmtpReply *reply, const char *fmt, ...) _printf_(4, 5);
static int conn_command(Conn *c, unsigned timeout, SmtpReply *reply, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof buf - 2)
                return -E2BIG;
        buf[n++] = '\r';
        buf[n++] = '\n';
        set_timeout(c, SO_SNDTIMEO, timeout);
        int r = conn_write(c, buf, (size_t) n);
        if (r < 0)
                return r;
        return conn_read_reply(c, timeout, reply);
}

/* A failure that applies to the whole session. */
typedef struct Failure {
        MailStatus status;
        char dsn[SMTP_DSN_MAX];
        char reply[SMTP_REPLY_TEXT_MAX + 32];
        char detail[SMTP_REPLY_TEXT_MAX + 700];
} Failure;

static void fail_set(Failure *f, MailStatus status, const char *dsn, const char *reply, const char *fmt, ...)
        _printf_(5, 6);
static void fail_set(Failure *f, MailStatus status, const char *dsn, const char *reply, const char *fmt, ...) {
        va_list ap;
        f->status = status;
        snprintf(f->dsn, sizeof f->dsn, "%s", dsn);
        snprintf(f->reply, sizeof f->reply, "%s", strempty(reply));
        va_start(ap, fmt);
        vsnprintf(f->detail, sizeof f->detail, fmt, ap);
        va_end(ap);
}

static void fail_from_reply(Failure *f, Conn *c, const SmtpReply *reply, const char *command) {
        char text[SMTP_REPLY_TEXT_MAX + 32];
        int cls = smtp_reply_class(reply);
        char dsn[SMTP_DSN_MAX];

        (void) smtp_reply_format(reply, text, sizeof text);
        if (reply->dsn[0])
                snprintf(dsn, sizeof dsn, "%s", reply->dsn);
        else
                snprintf(dsn, sizeof dsn, "%c.0.0", cls == 5 ? '5' : '4');
        fail_set(f, cls == 5 ? MAIL_PERMFAIL : MAIL_TEMPFAIL, dsn, text,
                 "host %s said: %s (in reply to %s command)", c->host, text, command);
}

static void fail_from_io(Failure *f, Conn *c, int r, const char *while_what) {
        if (r == -ETIMEDOUT)
                fail_set(f, MAIL_TEMPFAIL, "4.4.2", NULL, "conversation with %s timed out while %s", c->host,
                         while_what);
        else if (r == -EBADMSG || r == -E2BIG)
                fail_set(f, MAIL_TEMPFAIL, "4.5.0", NULL, "host %s sent a malformed reply while %s", c->host,
                         while_what);
        else
                fail_set(f, MAIL_TEMPFAIL, "4.4.2", NULL, "lost connection with %s while %s", c->host, while_what);
}

static void rcpt_set(SmtpRecipient *r, MailStatus status, const char *dsn, const char *reply, const char *detail) {
        smtp_recipient_done(r);
        r->status = status;
        snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
        r->reply = reply && *reply ? strdup(reply) : NULL;
        r->detail = strdup(strempty(detail));
}

static void rcpt_set_failure(SmtpRecipient *r, const Failure *f) {
        rcpt_set(r, f->status, f->dsn, f->reply, f->detail);
}

typedef struct Ehlo {
        bool esmtp;
        bool starttls;
        bool eight_bit;
        bool size;
        uint64_t size_max;
} Ehlo;

static void ehlo_parse(const SmtpReply *reply, Ehlo *e) {
        *e = (Ehlo) { .esmtp = true };
        for (size_t i = 1; i < reply->n_lines; i++) {
                const char *l = reply->lines[i];
                if (strcaseeq(l, "STARTTLS"))
                        e->starttls = true;
                else if (strcaseeq(l, "8BITMIME"))
                        e->eight_bit = true;
                else if (strncasecmp(l, "SIZE", 4) == 0 && (l[4] == 0 || l[4] == ' ')) {
                        e->size = true;
                        e->size_max = l[4] ? strtoull(l + 5, NULL, 10) : 0;
                }
        }
}

/* The first word of the greeting or EHLO reply names the server. */
static bool greets_as(const SmtpReply *reply, const char *name) {
        const char *t = reply->first;
        size_t n = strcspn(t, " ");
        return n > 0 && strlen(name) == n && strncasecmp(t, name, n) == 0;
}

static int tls_start(Conn *c, const SmtpTarget *t) {
        int r;

        r = tls_lib_load();
        if (r < 0)
                return -EPROTO;
        r = sym_gnutls_certificate_allocate_credentials(&c->cred);
        if (r < 0)
                return -ENOMEM;
        r = sym_gnutls_init(&c->tls, GNUTLS_CLIENT);
        if (r < 0)
                return -ENOMEM;
        if (sym_gnutls_set_default_priority(c->tls) < 0 ||
            sym_gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred) < 0)
                return -EPROTO;
        /* SNI only for a name, never for an address literal. */
        struct in6_addr dummy;
        if (t->host && !inet_pton(AF_INET, t->host, &dummy) && !inet_pton(AF_INET6, t->host, &dummy))
                (void) sym_gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, t->host, strlen(t->host));
        sym_gnutls_transport_set_int2(c->tls, c->fd, c->fd);
        sym_gnutls_handshake_set_timeout(c->tls, c->cfg->helo_timeout * 1000);
        set_timeout(c, SO_RCVTIMEO, c->cfg->helo_timeout);
        set_timeout(c, SO_SNDTIMEO, c->cfg->helo_timeout);
        do
                r = sym_gnutls_handshake(c->tls);
        while (r < 0 && !sym_gnutls_error_is_fatal(r));
        if (r < 0) {
                log_debug("TLS handshake with %s failed: %s", c->host, sym_gnutls_strerror(r));
                c->broken = true;
                return -EPROTO;
        }
        return 0;
}

typedef enum Step {
        STEP_NEXT_HOST,      /* failure before the transaction: try the next host */
        STEP_DONE,           /* recipients have their results */
} Step;

typedef struct DataState {
        Conn *c;
        bool bol;            /* at the beginning of a line */
        bool ended_lf;
        int error;
} DataState;

static int data_cb(const void *data, size_t len, void *userdata) {
        DataState *s = userdata;
        const char *p = data, *end = p + len;
        int r;

        while (p < end) {
                if (s->bol && *p == '.') {
                        r = conn_write(s->c, ".", 1);
                        if (r < 0)
                                goto fail;
                }
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);
                if (n > 0) {
                        r = conn_write(s->c, p, n);
                        if (r < 0)
                                goto fail;
                }
                if (nl) {
                        r = conn_write(s->c, "\r\n", 2);
                        if (r < 0)
                                goto fail;
                        s->bol = true;
                        s->ended_lf = true;
                        p = nl + 1;
                } else {
                        s->bol = false;
                        s->ended_lf = false;
                        p = end;
                }
        }
        return 0;
fail:
        s->error = r;
        return r;
}

typedef enum Open {
        OPEN_OK,
        OPEN_NEXT_HOST,      /* failure before the transaction: try the next host (f says why) */
        OPEN_RETRY_PLAIN,    /* TLS failed at level may: same host again without TLS */
        OPEN_FINAL,          /* every recipient fails with f (a mail loop) */
} Open;

/* Greeting, EHLO/HELO and STARTTLS. */
static Open session_open(Conn *c, const SmtpTarget *t, bool allow_tls, Ehlo *ehlo, Failure *f) {
        const SmtpClientConfig *cfg = c->cfg;
        SmtpReply reply;
        Open ret = OPEN_NEXT_HOST;
        int r;

        smtp_reply_init(&reply);
        *ehlo = (Ehlo) {};

        r = conn_read_reply(c, cfg->helo_timeout, &reply);
        if (r < 0) {
                fail_from_io(f, c, r, "receiving the initial server greeting");
                goto out;
        }
        if (smtp_reply_class(&reply) != 2) {
                fail_from_reply(f, c, &reply, "the initial greeting");
                snprintf(f->detail, sizeof f->detail, "host %s refused to talk to me: %s", c->host, f->reply);
                goto out;
        }
        if (greets_as(&reply, cfg->helo_name))
                goto loop;

        for (int round = 0; round < 2; round++) {
                r = conn_command(c, cfg->helo_timeout, &reply, "EHLO %s", cfg->helo_name);
                if (r < 0) {
                        fail_from_io(f, c, r, "performing the EHLO handshake");
                        goto out;
                }
                if (smtp_reply_class(&reply) == 2) {
                        ehlo_parse(&reply, ehlo);
                } else {
                        if (round > 0 || smtp_reply_class(&reply) != 5) {
                                fail_from_reply(f, c, &reply, "EHLO");
                                goto out;
                        }
                        r = conn_command(c, cfg->helo_timeout, &reply, "HELO %s", cfg->helo_name);
                        if (r < 0) {
                                fail_from_io(f, c, r, "performing the HELO handshake");
                                goto out;
                        }
                        if (smtp_reply_class(&reply) != 2) {
                                fail_from_reply(f, c, &reply, "HELO");
                                goto out;
                        }
                        *ehlo = (Ehlo) {};
                }
                if (greets_as(&reply, cfg->helo_name))
                        goto loop;
                if (round > 0 || c->tls)
                        break;

                if (cfg->tls == TLS_LEVEL_NONE || !allow_tls)
                        break;
                if (!ehlo->starttls) {
                        if (cfg->tls == TLS_LEVEL_ENCRYPT) {
                                fail_set(f, MAIL_TEMPFAIL, "4.7.5", NULL,
                                         "TLS is required, but was not offered by host %s", c->host);
                                goto out;
                        }
                        break;
                }
                r = conn_command(c, cfg->helo_timeout, &reply, "STARTTLS");
                if (r < 0) {
                        fail_from_io(f, c, r, "sending STARTTLS");
                        goto out;
                }
                if (smtp_reply_class(&reply) != 2) {
                        if (cfg->tls == TLS_LEVEL_ENCRYPT) {
                                char text[SMTP_REPLY_TEXT_MAX + 32];
                                (void) smtp_reply_format(&reply, text, sizeof text);
                                fail_set(f, MAIL_TEMPFAIL, "4.7.5", text,
                                         "TLS is required, but host %s refused to start TLS: %s", c->host, text);
                                goto out;
                        }
                        break;   /* plain text at level may */
                }
                /* Anything the server pipelined before the handshake is an attack: drop it. */
                if (c->in_end > c->in_start) {
                        fail_set(f, MAIL_TEMPFAIL, "4.7.5", NULL,
                                 "host %s sent data after the STARTTLS reply", c->host);
                        c->broken = true;
                        if (cfg->tls == TLS_LEVEL_MAY)
                                ret = OPEN_RETRY_PLAIN;
                        goto out;
                }
                r = tls_start(c, t);
                if (r < 0) {
                        fail_set(f, MAIL_TEMPFAIL, "4.7.5", NULL, "TLS handshake with host %s failed", c->host);
                        if (cfg->tls == TLS_LEVEL_MAY)
                                ret = OPEN_RETRY_PLAIN;
                        c->broken = true;
                        goto out;
                }
        }
        ret = OPEN_OK;
        goto out;
loop:
        fail_set(f, MAIL_PERMFAIL, "5.4.6", NULL, "mail for %s loops back to myself", c->destination);
        ret = OPEN_FINAL;
out:
        smtp_reply_done(&reply);
        return ret;
}

static void all_fail(SmtpRecipient *rcpts, size_t n, const bool *only, const Failure *f) {
        for (size_t i = 0; i < n; i++)
                if (!only || only[i])
                        rcpt_set_failure(&rcpts[i], f);
}

/* MAIL, RCPT, DATA. Returns STEP_NEXT_HOST when the connection failed before MAIL FROM had an
 * answer (nothing is decided yet), else STEP_DONE with every recipient's result filled in. */
static Step session_transaction(Conn *c, const Ehlo *ehlo, const SmtpMessage *m, SmtpRecipient *rcpts,
                                size_t n_rcpts, Failure *f) {
        const SmtpClientConfig *cfg = c->cfg;
        SmtpReply reply;
        _cleanup_free_ bool *accepted = NULL;
        size_t n_accepted = 0;
        Step step = STEP_DONE;
        int r;

        smtp_reply_init(&reply);

        if (ehlo->size && ehlo->size_max > 0 && m->size > ehlo->size_max) {
                fail_set(f, MAIL_PERMFAIL, "5.3.4", NULL,
                         "message size %" PRIu64 " exceeds size limit %" PRIu64 " of server %s", m->size,
                         ehlo->size_max, c->host);
                all_fail(rcpts, n_rcpts, NULL, f);
                goto out;
        }

        char params[128] = "";
        if (ehlo->size)
                snprintf(params, sizeof params, " SIZE=%" PRIu64, m->size);
        if (m->eight_bit && ehlo->eight_bit)
                strncat(params, " BODY=8BITMIME", sizeof params - strlen(params) - 1);
        r = conn_command(c, cfg->mail_timeout, &reply, "MAIL FROM:<%s>%s", m->sender, params);
        if (r < 0) {
                fail_from_io(f, c, r, "sending MAIL FROM");
                step = STEP_NEXT_HOST;
                goto out;
        }
        if (smtp_reply_class(&reply) != 2) {
                fail_from_reply(f, c, &reply, "MAIL FROM");
                all_fail(rcpts, n_rcpts, NULL, f);
                goto out;
        }

        accepted = calloc(n_rcpts, sizeof(bool));
        if (!accepted) {
                fail_set(f, MAIL_TEMPFAIL, "4.3.0", NULL, "out of memory");
                all_fail(rcpts, n_rcpts, NULL, f);
                c->broken = true;
                goto out;
        }
        for (size_t i = 0; i < n_rcpts; i++) {
                r = conn_command(c, cfg->rcpt_timeout, &reply, "RCPT TO:<%s>", rcpts[i].address);
                if (r < 0) {
                        fail_from_io(f, c, r, "sending RCPT TO");
                        for (size_t j = 0; j < n_rcpts; j++)
                                if (accepted[j] || j >= i)
                                        rcpt_set_failure(&rcpts[j], f);
                        goto out;
                }
                if (smtp_reply_class(&reply) == 2) {
                        accepted[i] = true;
                        n_accepted++;
                } else {
                        Failure rf;
                        fail_from_reply(&rf, c, &reply, "RCPT TO");
                        rcpt_set_failure(&rcpts[i], &rf);
                }
        }
        if (n_accepted == 0)
                goto out;

        r = conn_command(c, cfg->data_init_timeout, &reply, "DATA");
        if (r < 0) {
                fail_from_io(f, c, r, "sending DATA command");
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }
        if (smtp_reply_class(&reply) != 3) {
                fail_from_reply(f, c, &reply, "DATA");
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }

        DataState ds = { .c = c, .bol = true, .ended_lf = true };
        set_timeout(c, SO_SNDTIMEO, cfg->data_xfer_timeout);
        r = m->read_content(m->userdata, data_cb, &ds);
        if (ds.error < 0 || (r < 0 && c->broken)) {
                fail_from_io(f, c, ds.error < 0 ? ds.error : r, "sending message body");
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }
        if (r < 0) {
                /* Our own queue file failed: stop without ending the DATA, so nothing half is
                 * delivered. */
                fail_set(f, MAIL_TEMPFAIL, "4.3.0", NULL, "cannot read queue file: %s", strerror(-r));
                c->broken = true;
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }
        if (!ds.ended_lf)
                r = conn_write(c, "\r\n", 2);
        if (r >= 0)
                r = conn_write(c, ".\r\n", 3);
        if (r < 0) {
                fail_from_io(f, c, r, "sending message body");
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }
        r = conn_read_reply(c, cfg->data_done_timeout, &reply);
        if (r < 0) {
                fail_from_io(f, c, r, "sending end of data -- message may be sent more than once");
                all_fail(rcpts, n_rcpts, accepted, f);
                goto out;
        }
        Failure res;
        if (smtp_reply_class(&reply) == 2) {
                char text[SMTP_REPLY_TEXT_MAX + 32];
                (void) smtp_reply_format(&reply, text, sizeof text);
                fail_set(&res, MAIL_OK, reply.dsn[0] ? reply.dsn : "2.0.0", text, "%s", text);
        } else
                fail_from_reply(&res, c, &reply, "end of DATA");
        all_fail(rcpts, n_rcpts, accepted, &res);
out:
        /* A server that says 421 is closing the connection. */
        if (reply.code == 421)
                c->broken = true;
        smtp_reply_done(&reply);
        return step;
}

static void session_quit(Conn *c) {
        if (c->fd >= 0 && !c->broken) {
                SmtpReply q;
                smtp_reply_init(&q);
                (void) conn_command(c, c->cfg->helo_timeout, &q, "QUIT");
                smtp_reply_done(&q);
                if (c->tls)
                        (void) sym_gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        }
        conn_close(c);
}

/* ---- the connection cache ---- */

#define CACHE_MAX 8
#define CACHE_TTL_SEC 300

typedef struct CacheEntry {
        char *destination;
        Conn *conn;
        Ehlo ehlo;
        time_t since;
} CacheEntry;

struct SmtpCache {
        CacheEntry e[CACHE_MAX];
        const SmtpClientConfig *cfg;
};

int smtp_cache_new(SmtpCache **ret) {
        SmtpCache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

static void conn_free(Conn *c) {
        if (!c)
                return;
        conn_close(c);
        free(c->destination_owned);
        free(c);
}

static void cache_drop(CacheEntry *e, bool quit) {
        if (!e->conn)
                return;
        if (quit)
                session_quit(e->conn);
        conn_free(e->conn);
        free(e->destination);
        *e = (CacheEntry) {};
}

SmtpCache *smtp_cache_free(SmtpCache *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CACHE_MAX; i++)
                cache_drop(&c->e[i], true);
        free(c);
        return NULL;
}

static Conn *cache_take(SmtpCache *c, const char *destination, Ehlo *ret_ehlo) {
        time_t now = time(NULL);
        for (size_t i = 0; c && i < CACHE_MAX; i++) {
                CacheEntry *e = &c->e[i];
                if (!e->conn)
                        continue;
                if (now - e->since > CACHE_TTL_SEC) {
                        cache_drop(e, true);
                        continue;
                }
                if (!strcaseeq(e->destination, destination))
                        continue;
                Conn *conn = e->conn;
                *ret_ehlo = e->ehlo;
                free(e->destination);
                *e = (CacheEntry) {};
                return conn;
        }
        return NULL;
}

/* Keeps a connection after a transaction; returns false when it must be closed instead. */
static bool cache_put(SmtpCache *c, const char *destination, Conn *conn, const Ehlo *ehlo, time_t since) {
        if (!c || conn->broken || conn->fd < 0)
                return false;
        size_t slot = 0;
        for (size_t i = 0; i < CACHE_MAX; i++)
                if (!c->e[i].conn || c->e[i].since < c->e[slot].since) {
                        slot = i;
                        if (!c->e[i].conn)
                                break;
                }
        cache_drop(&c->e[slot], true);
        char *d = strdup(destination);
        if (!d)
                return false;
        c->e[slot] = (CacheEntry) { .destination = d, .conn = conn, .ehlo = *ehlo, .since = since };
        return true;
}

static Conn *conn_new(const SmtpClientConfig *cfg, const char *destination) {
        Conn *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->fd = -EBADF;
        c->cfg = cfg;
        c->destination_owned = strdup(destination);
        if (!c->destination_owned) {
                free(c);
                return NULL;
        }
        c->destination = c->destination_owned;
        return c;
}

int smtp_deliver(const SmtpClientConfig *cfg, SmtpCache *cache, const char *destination, const SmtpTarget *targets,
                 size_t n_targets, const SmtpMessage *m, SmtpRecipient *rcpts, size_t n_rcpts, char **ret_relay) {
        Failure f;
        char last_relay[600] = "none";
        bool done = false;
        Ehlo ehlo;

        fail_set(&f, MAIL_TEMPFAIL, "4.4.1", NULL, "no mail host for %s could be reached", destination);

        /* A connection kept from an earlier message: RSET tells whether it still works. */
        Conn *cc = cache_take(cache, destination, &ehlo);
        if (cc) {
                SmtpReply reply;
                smtp_reply_init(&reply);
                cc->broken = false;
                int r = conn_command(cc, cfg->helo_timeout, &reply, "RSET");
                Step s = STEP_NEXT_HOST;
                if (r >= 0 && smtp_reply_class(&reply) == 2)
                        s = session_transaction(cc, &ehlo, m, rcpts, n_rcpts, &f);
                smtp_reply_done(&reply);
                if (s == STEP_DONE) {
                        snprintf(last_relay, sizeof last_relay, "%s", cc->relay);
                        done = true;
                        if (!cache_put(cache, destination, cc, &ehlo, time(NULL))) {
                                session_quit(cc);
                                conn_free(cc);
                        }
                } else {
                        log_debug("Cached connection to %s is gone, connecting again.", cc->relay);
                        conn_free(cc);
                }
        }

        for (size_t i = 0; i < n_targets && !done; i++) {
                const SmtpTarget *t = &targets[i];
                char ip[INET6_ADDRSTRLEN];
                unsigned port = 0;
                bool allow_tls = true;

                if (smtp_target_address(t, ip, sizeof ip, &port) < 0)
                        continue;
                Conn *c = conn_new(cfg, destination);
                if (!c)
                        return -ENOMEM;
                snprintf(c->host, sizeof c->host, "%s[%s]", strempty(t->host), ip);
                snprintf(c->relay, sizeof c->relay, "%s:%u", c->host, port);
                snprintf(last_relay, sizeof last_relay, "%s", c->relay);

                for (int attempt = 0; attempt < 2 && !done; attempt++) {
                        c->broken = false;
                        int r = conn_connect(c, t);
                        if (r < 0) {
                                fail_set(&f, MAIL_TEMPFAIL, "4.4.1", NULL, "connect to %s:%u: %s", c->host, port,
                                         r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
                                log_debug("%s", f.detail);
                                break;
                        }
                        Open o = session_open(c, t, allow_tls, &ehlo, &f);
                        if (o == OPEN_FINAL) {
                                all_fail(rcpts, n_rcpts, NULL, &f);
                                session_quit(c);
                                done = true;
                                break;
                        }
                        if (o == OPEN_RETRY_PLAIN) {
                                conn_close(c);
                                allow_tls = false;
                                continue;
                        }
                        if (o == OPEN_NEXT_HOST) {
                                session_quit(c);
                                break;
                        }
                        time_t since = time(NULL);
                        Step s = session_transaction(c, &ehlo, m, rcpts, n_rcpts, &f);
                        if (s == STEP_DONE) {
                                done = true;
                                if (cache_put(cache, destination, c, &ehlo, since)) {
                                        c = NULL;
                                        break;
                                }
                        }
                        session_quit(c);
                        break;
                }
                conn_free(c);
        }
        if (!done)
                all_fail(rcpts, n_rcpts, NULL, &f);

        if (ret_relay) {
                char *s = strdup(last_relay);
                if (!s)
                        return -ENOMEM;
                *ret_relay = s;
        }
        return 0;
}
