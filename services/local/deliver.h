/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One local delivery, as asked by the queue runner (local-proto.h): a mailbox, a file or a
 * command, each run in a child process that has dropped to the user the delivery is for before
 * it opens any path that user could influence. The parent, which keeps root only to be able to
 * switch users, never opens a user's file itself; the child reports its outcome through a pipe in
 * the reply encoding.
 *
 * Mailbox deliveries read ~/.forward first (unless flagged "noforward") and, when it holds
 * targets, answer "forward" with its text. Files and commands never run as root: when the user
 * is root they run as default_privs.
 *
 * Mailbox and file deliveries (not commands, nor mailbox_command) go to a worker process kept per
 * set of credentials for the life of the connection: it drops privileges once, exactly as a
 * per-delivery child would, and then serves deliveries sent over a SOCK_SEQPACKET socketpair
 * (request encoding, queue fd as SCM_RIGHTS, one reply per request). At most 8 live at once; the
 * least recently used goes first. A worker that dies mid-delivery answers tempfail like a child.
 *
 * local_deliver() returns 0 with the outcome in *ret, or a negative errno when it could not even
 * try (fork failed, ...); the caller then answers tempfail.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/local-proto.h"
#include "common/resolve.h"

typedef struct LocalSettings {
        char *spool_dir;              /* mail_spool_directory */
        char *home_mailbox;           /* relative to home; "/" at the end: Maildir; NULL: spool */
        char *mailbox_command;        /* run in place of mailbox delivery; NULL: none */
        uint64_t mailbox_size_limit;  /* 0: none; also for file deliveries */
        uint64_t command_time_limit;  /* seconds */
        char *default_privs;
        char *command_directory;      /* command_execution_directory; NULL: home */
        char *forward_path;           /* forward_path, first entry with $home/$user; NULL: none */
        bool strict_ownership;        /* strict_mailbox_ownership */
        bool lock_dotlock, lock_fcntl, lock_flock;
        unsigned lock_attempts;
        uint64_t lock_delay_usec;
        uint64_t stale_lock_sec;
} LocalSettings;

int local_settings_load(const Config *c, LocalSettings *ret);
/* Rewrites Postfix's delivery-time names in mailbox_command ($user, ${extension}, ...) into
 * references to the environment variables that carry them ("${USER}", ...), so the shell expands
 * them inside the administrator's quoting and no envelope data enters the command string. */
char *local_command_translate(const char *raw);
void local_settings_done(LocalSettings *s);

typedef struct LocalOutcome {
        MailStatus status;
        bool forward;                 /* status is MAIL_OK and text is a ~/.forward */
        char dsn[8];
        char text[512];
        char *forward_text;           /* owned */
} LocalOutcome;

void local_outcome_done(LocalOutcome *o);

/* Checks a request's fields; fills *ret and returns -EINVAL when one is missing or malformed. */
int local_request_check(const LocalRequest *req, LocalOutcome *ret);

int local_deliver(const LocalSettings *s, const LocalRequest *req, int queue_fd, LocalOutcome *ret);
/* local_deliver() in steps, so that several requests can be handed to one worker before their
 * replies are read (mta-local(8): pipelining). local_job_prepare() makes the checks and decides
 * the identity: 0 with *ret_job, or with *ret_job NULL and the outcome in *ret when the checks
 * decided it; a negative errno when it could not even check. The job borrows req, s and queue_fd
 * until it is sent or finished. local_job_send() hands a worker job (local_job_by_worker()) to its
 * worker without waiting for the reply; local_job_same_worker() says whether two jobs go to the
 * same worker. local_job_finish() gives the outcome: it reads the worker's reply (sending first if
 * need be; replies come back in the order the requests were sent), or runs any other delivery to
 * its end. A worker that dies with requests outstanding answers each of them tempfail. */
typedef struct LocalJob LocalJob;

int local_job_prepare(const LocalSettings *s, const LocalRequest *req, int queue_fd, LocalJob **ret_job,
                      LocalOutcome *ret);
bool local_job_by_worker(const LocalJob *j);
bool local_job_same_worker(const LocalJob *a, const LocalJob *b);
int local_job_send(LocalJob *j);
int local_job_finish(LocalJob *j, LocalOutcome *ret);
LocalJob *local_job_free(LocalJob *j);

/* Closes the sockets of the per-credential workers (see mta-local(8)), reaps them and forgets the
 * cached account lookups; for the end of a connection. */
void local_deliver_shutdown(void);

/* True for names that may become a file name in the spool directory: not empty, no "/", no
 * leading ".", no control characters, not too long. */
bool local_user_name_valid(const char *name);
