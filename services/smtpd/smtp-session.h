/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One SMTP server session, as a state machine over bytes: the connection feeds what it read with
 * smtp_session_feed() and sends what smtp_session_output() holds. Nothing here touches a socket,
 * so a whole session can be driven from a buffer (tests, fuzzing). Queueing is asynchronous: at
 * the end of DATA the session hands its QueueWriter to ops->commit and stops consuming input until
 * smtp_session_commit_done() (which ops->commit may also call at once). STARTTLS likewise: after
 * "220 2.0.0 Ready to start TLS" the session discards the rest of the input and waits for
 * smtp_session_tls_done(). The session logs its own mail events (connect, queued, rejections).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"
#include "common/queue.h"
#include "services/smtpd/smtp-settings.h"

typedef struct SmtpSession SmtpSession;

typedef struct SmtpPeer {
        const char *address;      /* "192.0.2.1", "::1", or "local" for the submission socket */
        const char *name;         /* host name, or "unknown" */
        bool in_mynetworks;
        bool local;               /* submission socket: trusted, U record, sender checked */
        uid_t uid;                /* local only */
        const char *login;        /* local only; NULL when the uid has no account */
} SmtpPeer;

typedef struct SmtpSessionOps {
        /* Takes ownership of w (data already closed). Must lead to smtp_session_commit_done(). */
        void (*commit)(SmtpSession *s, QueueWriter *w, void *userdata);
        /* The 220 reply to STARTTLS is in the output: flush it, then run the handshake. */
        void (*starttls)(SmtpSession *s, void *userdata);
} SmtpSessionOps;

int smtp_session_new(SmtpSettings *settings, const SmtpPeer *peer, const SmtpSessionOps *ops, void *userdata,
                     SmtpSession **ret);
/* A session with a commit still in flight must not be freed before it completes: the caller
 * detaches it instead (the commit then finishes without a session). */
SmtpSession *smtp_session_free(SmtpSession *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpSession *, smtp_session_free);

/* Writes the 220 greeting and logs the connection. */
void smtp_session_start(SmtpSession *s);
/* Instead of the greeting: "421 4.7.0 host Error: <why>", and the session closes. */
void smtp_session_start_refused(SmtpSession *s, const char *why);

/* Consumes input; returns how many bytes were taken (fewer when paused or the output is full). */
size_t smtp_session_feed(SmtpSession *s, const void *data, size_t len);
/* The client closed or the connection broke: an unfinished message is discarded. */
void smtp_session_eof(SmtpSession *s);
/* smtpd_timeout expired: 421 4.4.2 and close. */
void smtp_session_timeout(SmtpSession *s);
/* SIGTERM: an idle session says 421 4.3.2 and closes, one in a transaction closes after it. */
void smtp_session_shutdown(SmtpSession *s);

void smtp_session_commit_done(SmtpSession *s, int r);
/* tls_desc NULL: the handshake failed and the connection closes. */
void smtp_session_tls_done(SmtpSession *s, const char *tls_desc);

const void *smtp_session_output(SmtpSession *s, size_t *ret_len);
void smtp_session_output_consumed(SmtpSession *s, size_t n);

bool smtp_session_wants_input(const SmtpSession *s);
/* Output should be flushed and the connection closed. */
bool smtp_session_closing(const SmtpSession *s);
/* After an error reply beyond smtpd_soft_error_limit the session takes no input until the caller
 * has waited smtpd_error_sleep_time (Postfix's tarpit) and called this, which returns whether a
 * wait was due and clears it. */
bool smtp_session_take_tarpit(SmtpSession *s);
/* True while a commit is in flight. */
bool smtp_session_committing(const SmtpSession *s);
/* Grows when the client makes progress (a complete command, message data): the idle timer is
 * reset only then, so trickling a command one byte at a time does not keep a session alive. */
uint64_t smtp_session_progress(const SmtpSession *s);
