/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Parser for SMTP server replies (RFC 5321 4.2, enhanced status codes of RFC 3463), used by the
 * queue runner's SMTP client. A reply is fed one line at a time (without its CRLF); the parser
 * accepts "NNN text", "NNN-text" continuation lines and a bare "NNN", and checks that every line of
 * a multi-line reply carries the same code. The text that a remote server sends is untrusted: it is
 * kept only after control and non-ASCII bytes have been replaced by '?', and the number and length
 * of lines are bounded, so a hostile server cannot make us store or log anything else.
 *
 * smtp_reply_feed() returns 0 when more lines are needed, 1 when the reply is complete, -EBADMSG for
 * a line that is not a reply line (the reply is then unusable) and -E2BIG when the reply is too long.
 */

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINES_MAX 100
#define SMTP_REPLY_TEXT_MAX 4096
#define SMTP_DSN_MAX 16

typedef struct SmtpReply {
        int code;                      /* 200..599 */
        char dsn[SMTP_DSN_MAX];        /* enhanced code of the first line ("2.1.0"), or "" */
        char text[SMTP_REPLY_TEXT_MAX];/* text of all lines without code and enhanced code, joined by
                                        * single spaces, sanitized */
        char first[SMTP_REPLY_TEXT_MAX];/* first line's text as sent (sanitized), for EHLO's name */
        char **lines;                  /* each line's text (sanitized), for EHLO keywords; strv */
        size_t n_lines;
        bool done;
} SmtpReply;

void smtp_reply_init(SmtpReply *r);
void smtp_reply_done(SmtpReply *r);       /* frees lines and resets */

int smtp_reply_feed(SmtpReply *r, const char *line, size_t len);

/* Parses an enhanced status code "C.SSS.DDD" at the start of s; returns its length (0 when there is
 * none). The class digit must match expected_class when that is not 0. */
size_t smtp_dsn_parse(const char *s, size_t len, char expected_class, char ret[static SMTP_DSN_MAX]);

/* Reply class: 2, 3, 4 or 5. */
static inline int smtp_reply_class(const SmtpReply *r) {
        return r->code / 100;
}

/* "250 2.0.0 Ok: queued as X" style text for logs and bounces (code, dsn when present, text). */
int smtp_reply_format(const SmtpReply *r, char *buf, size_t size);
