/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Submission through the local submission socket ($runstatedir/submit.sock), on which mta-smtpd
 * speaks plain SMTP and learns who we are from the kernel (SO_PEERCRED). This is how users other
 * than root and mail_owner submit mail: no set-uid program is involved, and the receiver alone
 * decides which envelope senders a user may use.
 *
 * submit_message() runs one session: EHLO (HELO when refused), then transactions of MAIL, RCPT
 * and DATA until every recipient has been tried; when the server limits the recipients per
 * transaction (452 4.5.3 after some were accepted), the rest go into the next transaction. The
 * outcome is a sysexits(3) code, explained on stderr:
 *   EX_OK          every recipient accepted
 *   EX_TEMPFAIL    the socket is missing or refuses connections, the server answered 4xx, or the
 *                  connection broke before the message was accepted
 *   EX_NOPERM      the server refused on policy grounds (5.7.x), e.g. a sender the user may not use
 *   EX_NOUSER      a recipient was refused (5xx)
 *   EX_DATAERR     the sender or the message was refused (5xx other than 5.7.x)
 *   EX_PROTOCOL    the server's replies made no sense
 *   EX_IOERR       local I/O trouble
 * The first failure decides the code; ret_n_accepted says how many recipients did get the
 * message (those are queued whatever the code).
 *
 * submit_relay() connects stdin/stdout to the socket for "sendmail -bs".
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct SubmitRequest {
        const char *socket_path;
        const char *helo_name;
        const char *sender;            /* "" for the null sender */
        char * const *recipients;
        const char *content;           /* LF line ends */
        size_t content_len;
        const char *body_type;         /* "8BITMIME", "7BIT" or NULL */
        bool verbose;                  /* show the dialogue on stderr */
} SubmitRequest;

/* The socket path: $MTA_SUBMIT_SOCKET if set, else MTA_RUNSTATEDIR "/submit.sock". */
const char *submit_socket_path(void);

int submit_message(const SubmitRequest *req, size_t *ret_n_accepted);

/* Copies in_fd to the socket and the socket to out_fd until the server closes; returns EX_OK, or
 * EX_TEMPFAIL after writing "421" to out_fd when the socket cannot be reached. */
int submit_relay(const char *socket_path, int in_fd, int out_fd);

/* Connects to the socket; returns the fd or a negative errno. */
int submit_connect(const char *socket_path);
