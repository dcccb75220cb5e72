/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The SMTP client of the queue runner: one session to one destination carrying one message for
 * several recipients. It tries the destination's hosts in order (the caller builds that list from
 * relayhost or MX records, see route.h) until one of them takes the transaction, speaks EHLO (HELO
 * when EHLO is refused), STARTTLS per smtp_tls_security_level (GnuTLS; certificates are never
 * verified, as Postfix's "may" and "encrypt" levels do not), SIZE and BODY=8BITMIME, and sends the
 * stored content with CRLF line ends and dot-stuffing. Every wait has a timeout.
 *
 * The outcome of each recipient is filled into its SmtpRecipient; smtp_deliver() itself returns 0,
 * or a negative errno only for local trouble (-ENOMEM, an unreadable queue file) in which case the
 * recipients are left untouched and the caller defers them.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/resolve.h"
#include "services/queue/smtp-reply.h"

typedef enum TlsLevel {
        TLS_LEVEL_NONE,
        TLS_LEVEL_MAY,
        TLS_LEVEL_ENCRYPT,
} TlsLevel;

/* "", "none" -> none; "may" -> may; "encrypt" (and "dane", "verify", "secure", which we cannot
 * honour more strictly) -> encrypt. -EINVAL for anything else. */
int tls_level_from_string(const char *s, TlsLevel *ret);

typedef struct SmtpClientConfig {
        const char *helo_name;          /* myhostname */
        TlsLevel tls;
        unsigned connect_timeout;       /* seconds, each */
        unsigned helo_timeout;
        unsigned mail_timeout;
        unsigned rcpt_timeout;
        unsigned data_init_timeout;
        unsigned data_xfer_timeout;
        unsigned data_done_timeout;
} SmtpClientConfig;

typedef struct SmtpTarget {
        char *host;                     /* name for logs and TLS SNI */
        struct sockaddr_storage addr;
        socklen_t addr_len;
} SmtpTarget;

typedef struct SmtpRecipient {
        const char *address;
        /* results */
        MailStatus status;
        char dsn[SMTP_DSN_MAX];
        char *reply;                    /* the remote reply ("550 5.1.1 ...") or NULL */
        char *detail;                   /* readable reason, e.g. "host h[ip] said: 550 ... (in reply to
                                         * RCPT TO command)" */
} SmtpRecipient;

void smtp_recipient_done(SmtpRecipient *r);

/* Reads message content; the client converts LF to CRLF and dot-stuffs on the fly. */
typedef int (*smtp_content_reader)(void *userdata, int (*cb)(const void *data, size_t len, void *cb_data),
                                   void *cb_data);

typedef struct SmtpMessage {
        const char *sender;             /* "" for <> */
        bool eight_bit;                 /* BODY=8BITMIME */
        uint64_t size;
        smtp_content_reader read_content;
        void *userdata;
} SmtpMessage;

/* Open connections kept between messages of one queue run (Postfix's connection cache): after a
 * transaction the connection stays open for the next message to the same destination, which is
 * probed with RSET first; at most 8 connections, each for at most 300 seconds. smtp_cache_free()
 * ends them with QUIT. */
typedef struct SmtpCache SmtpCache;
int smtp_cache_new(SmtpCache **ret);
SmtpCache *smtp_cache_free(SmtpCache *c);

/* Runs the session for destination (the domain or relay host, for messages). *ret_relay (may be
 * NULL) gets "host[ip]:port" of the host that answered last, or "none". A server that greets us with
 * our own helo_name is a mail loop: its recipients bounce with 5.4.6. */
int smtp_deliver(const SmtpClientConfig *cfg, SmtpCache *cache, const char *destination,
                 const SmtpTarget *targets, size_t n_targets, const SmtpMessage *m, SmtpRecipient *rcpts, size_t n_rcpts, char **ret_relay);

/* Formats an address as "ip" ("::1" without brackets) and its port. */
int smtp_target_address(const SmtpTarget *t, char *buf, size_t size, unsigned *ret_port);
