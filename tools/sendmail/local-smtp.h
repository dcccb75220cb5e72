/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * "sendmail -bs" for root and mail_owner when the submission socket is not there (early boot,
 * containers, tests): a small SMTP server on stdin/stdout that writes accepted messages into the
 * queue with enqueue_message(). It speaks EHLO/HELO, MAIL (SIZE, BODY), RCPT, DATA, RSET, NOOP,
 * VRFY (252) and QUIT, advertises PIPELINING, 8BITMIME and SIZE, and finishes each message as a
 * local submission (missing Date:, From:, Message-ID: added; Bcc: removed). Everybody else's -bs
 * session is relayed to the receiver (submit_relay()), which applies the sender policy.
 *
 * local_smtp_run() returns EX_OK when the client quits or closes its side, EX_IOERR when the
 * output breaks.
 */

#include <sys/types.h>

#include "common/config.h"

typedef struct LocalSmtp {
        const Config *config;
        const char *login;
        const char *myhostname;
        const char *myorigin;       /* "" to leave unqualified addresses alone */
        const char *mail_owner;
        uid_t uid;
} LocalSmtp;

int local_smtp_run(const LocalSmtp *s, int in_fd, int out_fd);
