/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/address.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/queue.h"
#include "common/strv.h"
#include "tools/sendmail/addrlist.h"
#include "tools/sendmail/enqueue.h"
#include "tools/sendmail/local-smtp.h"
#include "tools/sendmail/message.h"

typedef struct Session {
        const LocalSmtp *s;
        FILE *in, *out;
        char *helo;
        bool esmtp;
        char *sender;             /* NULL: no MAIL yet */
        char **recipients;
        bool body_8bit;
        uint64_t max_size;
        int64_t max_rcpt;
} Session;

static void session_reset(Session *t) {
        free(t->sender);
        t->sender = NULL;
        t->recipients = strv_free(t->recipients);
        t->body_8bit = false;
}

_printf_(2, 3)
static int reply(Session *t, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(t->out, format, ap);
        va_end(ap);
        fputs("\r\n", t->out);
        return fflush(t->out) == 0 ? 0 : -EIO;
}

/* A line without its line end; -ENODATA at the end of the input. */
static int read_line(Session *t, char **line, size_t *size, size_t *ret_len) {
        ssize_t n = getline(line, size, t->in);
        size_t l;

        if (n < 0)
                return -ENODATA;
        l = (size_t) n;
        if (l > 0 && (*line)[l - 1] == '\n')
                l--;
        if (l > 0 && (*line)[l - 1] == '\r')
                l--;
        (*line)[l] = '\0';
        *ret_len = l;
        return 0;
}

static int qualify_path(Session *t, const char *arg, char **ret_addr, const char **ret_params) {
        _cleanup_free_ char *addr = NULL;
        int r = address_parse_path(arg, &addr, ret_params);

        if (r < 0)
                return r;
        if (isempty(addr)) {
                *ret_addr = TAKE_PTR(addr);
                return 0;
        }
        return addrlist_qualify(addr, t->s->myorigin, ret_addr);
}

static int cmd_mail(Session *t, const char *arg) {
        _cleanup_free_ char *params_copy = NULL, *addr = NULL;
        const char *params;
        char *saveptr = NULL;

        if (t->sender)
                return reply(t, "503 5.5.1 Error: nested MAIL command");
        if (qualify_path(t, arg, &addr, &params) < 0)
                return reply(t, "501 5.1.7 Bad sender address syntax");

        params_copy = strdup(params);
        if (!params_copy)
                return -ENOMEM;
        for (char *p = strtok_r(params_copy, " ", &saveptr); p; p = strtok_r(NULL, " ", &saveptr)) {
                if (strncasecmp(p, "SIZE=", 5) == 0) {
                        char *end;
                        errno = 0;
                        unsigned long long size = strtoull(p + 5, &end, 10);
                        if (errno != 0 || *end || end == p + 5)
                                return reply(t, "501 5.5.4 Bad SIZE parameter");
                        if (t->max_size > 0 && size > t->max_size)
                                return reply(t, "552 5.3.4 Message size exceeds fixed limit");
                } else if (strcasecmp(p, "BODY=8BITMIME") == 0)
                        t->body_8bit = true;
                else if (strcasecmp(p, "BODY=7BIT") != 0)
                        return reply(t, "555 5.5.4 Unsupported option: %s", p);
        }
        t->sender = TAKE_PTR(addr);
        return reply(t, "250 2.1.0 Ok");
}

static int cmd_rcpt(Session *t, const char *arg) {
        _cleanup_free_ char *addr = NULL;
        const char *params;

        if (!t->sender)
                return reply(t, "503 5.5.1 Error: need MAIL command");
        if (qualify_path(t, arg, &addr, &params) < 0 || isempty(addr))
                return reply(t, "501 5.1.3 Bad recipient address syntax");
        if (t->max_rcpt > 0 && (int64_t) strv_length(t->recipients) >= t->max_rcpt)
                return reply(t, "452 4.5.3 Error: too many recipients");
        if (!strv_contains_case(t->recipients, addr) && strv_push(&t->recipients, TAKE_PTR(addr)) < 0)
                return -ENOMEM;
        return reply(t, "250 2.1.5 Ok");
}

static int cmd_data(Session *t) {
        _cleanup_(message_freep) Message *m = NULL;
        _cleanup_free_ char *buf = NULL, *line = NULL, *from = NULL, *msgid = NULL;
        size_t len = 0, allocated = 0, size = 0, l, content_len;
        char id[QUEUE_ID_MAX];
        bool too_big = false;
        int r;

        if (!t->sender)
                return reply(t, "503 5.5.1 Error: need MAIL command");
        if (strv_length(t->recipients) == 0)
                return reply(t, "554 5.5.1 Error: no valid recipients");
        r = reply(t, "354 End data with <CR><LF>.<CR><LF>");
        if (r < 0)
                return r;

        for (;;) {
                r = read_line(t, &line, &size, &l);
                if (r < 0)
                        return r;          /* the client went away: nothing was accepted */
                if (l == 1 && line[0] == '.')
                        break;
                const char *p = line[0] == '.' ? line + 1 : line;
                size_t n = line[0] == '.' ? l - 1 : l;
                if (too_big || (t->max_size > 0 && len + n + 1 > t->max_size)) {
                        too_big = true;
                        continue;
                }
                if (len + n + 2 > allocated) {
                        size_t a = allocated ? allocated : 65536;
                        while (a < len + n + 2)
                                a *= 2;
                        char *b = realloc(buf, a);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        allocated = a;
                }
                memcpy(buf + len, p, n);
                len += n;
                buf[len++] = '\n';
        }
        if (too_big) {
                session_reset(t);
                return reply(t, "552 5.3.4 Message size exceeds fixed limit");
        }

        if (addrlist_qualify(t->s->login, t->s->myorigin, &from) < 0 || queue_id_new(id) < 0 ||
            asprintf(&msgid, "<%s@%s>", id, t->s->myhostname) < 0)
                return -ENOMEM;
        r = message_from_buffer(buf ? buf : "", len, &m);
        if (r >= 0)
                r = message_finish(m, &(MessageFinish) {
                        .from_address = isempty(t->sender) ? from : t->sender,
                        .message_id = msgid,
                        .date = time(NULL),
                });
        if (r < 0)
                return r;

        const char *content = message_content(m, &content_len);
        r = enqueue_message(&(EnqueueRequest) {
                .queue_dir = strempty(config_get(t->s->config, "queue_directory")),
                .mail_owner = t->s->mail_owner,
                .info = {
                        .sender = t->sender,
                        .helo = t->helo,
                        .protocol = t->esmtp ? "ESMTP" : "SMTP",
                        .user = t->s->login,
                        .esmtp = t->body_8bit || message_is_8bit(m) ? "BODY=8BITMIME" : NULL,
                },
                .recipients = t->recipients,
                .content = content,
                .content_len = content_len,
                .received_by = t->s->myhostname,
                .uid = t->s->uid,
        }, id);
        session_reset(t);
        if (r != EX_OK)
                return reply(t, "451 4.3.0 Error: queue file write error");
        return reply(t, "250 2.0.0 Ok: queued as %s", id);
}

static int cmd_helo(Session *t, const char *arg, bool esmtp) {
        while (*arg == ' ')
                arg++;
        if (!*arg)
                return reply(t, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        session_reset(t);
        free(t->helo);
        t->helo = strdup(arg);
        if (!t->helo)
                return -ENOMEM;
        t->esmtp = esmtp;
        if (!esmtp)
                return reply(t, "250 %s", t->s->myhostname);
        fprintf(t->out, "250-%s\r\n250-PIPELINING\r\n", t->s->myhostname);
        if (t->max_size > 0)
                fprintf(t->out, "250-SIZE %" PRIu64 "\r\n", t->max_size);
        return reply(t, "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES");
}

int local_smtp_run(const LocalSmtp *s, int in_fd, int out_fd) {
        _cleanup_free_ char *line = NULL;
        Session t = { .s = s };
        size_t size = 0, l;
        int in = dup(in_fd), out = dup(out_fd), r;

        if (in >= 0)
                t.in = fdopen(in, "r");
        if (out >= 0)
                t.out = fdopen(out, "w");
        if (!t.in || !t.out) {
                if (t.in)
                        fclose(t.in);
                else
                        safe_close(in);
                if (t.out)
                        fclose(t.out);
                else
                        safe_close(out);
                return EX_OSERR;
        }
        (void) config_get_size(s->config, "message_size_limit", &t.max_size);
        (void) config_get_int(s->config, "smtpd_recipient_limit", &t.max_rcpt);

        r = reply(&t, "220 %s ESMTP mta-sendmail (local submission, no service running)", s->myhostname);
        while (r >= 0) {
                r = read_line(&t, &line, &size, &l);
                if (r < 0)
                        break;
                if (strncasecmp(line, "EHLO", 4) == 0 && (line[4] == ' ' || !line[4]))
                        r = cmd_helo(&t, line + 4, true);
                else if (strncasecmp(line, "HELO", 4) == 0 && (line[4] == ' ' || !line[4]))
                        r = cmd_helo(&t, line + 4, false);
                else if (strncasecmp(line, "MAIL FROM:", 10) == 0)
                        r = cmd_mail(&t, line + 10);
                else if (strncasecmp(line, "RCPT TO:", 8) == 0)
                        r = cmd_rcpt(&t, line + 8);
                else if (strcasecmp(line, "DATA") == 0)
                        r = cmd_data(&t);
                else if (strcasecmp(line, "RSET") == 0) {
                        session_reset(&t);
                        r = reply(&t, "250 2.0.0 Ok");
                } else if (strncasecmp(line, "NOOP", 4) == 0)
                        r = reply(&t, "250 2.0.0 Ok");
                else if (strncasecmp(line, "VRFY", 4) == 0)
                        r = reply(&t, "252 2.0.0 Send mail and it will be tried");
                else if (strcasecmp(line, "QUIT") == 0) {
                        r = reply(&t, "221 2.0.0 Bye");
                        break;
                } else
                        r = reply(&t, "502 5.5.2 Error: command not recognized");
        }
        session_reset(&t);
        free(t.helo);
        fclose(t.in);
        bool out_ok = fclose(t.out) == 0;
        if (r == -ENOMEM)
                return EX_OSERR;
        return (r < 0 && r != -ENODATA) || !out_ok ? EX_IOERR : EX_OK;
}
