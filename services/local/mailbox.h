/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Appending one message to an mbox file, safely, as the user who owns it (the caller has already
 * dropped to that user). The file is opened without following a symbolic link and is checked
 * before and after the open: a regular file, one link, the expected owner, the same inode that
 * lstat saw. A missing file is created with O_EXCL and mode 0600.
 *
 * Locking is what Debian's mail readers expect: a dot-lock NAME.lock beside the mailbox (for
 * mailboxes in the spool directory) and an fcntl lock on the file itself, each waited for with a
 * bound. The dot-lock also serves as a journal: it holds our pid and the mailbox size before the
 * write, so the next delivery that finds the lock left behind by a killed delivery cuts the
 * mailbox back to that size before it writes: a crash never leaves a partial message for good.
 *
 * On any failure after the write began the file is truncated back to its old size. The outcome is
 * a MailStatus with an enhanced status code and a text for the reply.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/resolve.h"
#include "services/local/mbox.h"

typedef struct MailboxOptions {
        bool dotlock;                  /* NAME.lock in the same directory */
        bool fcntl_lock;
        bool flock_lock;
        bool check_owner;              /* refuse a file not owned by owner */
        uid_t owner;
        uint64_t size_limit;           /* 0: none */
        unsigned lock_attempts;        /* how often a held lock is waited for */
        uint64_t lock_delay_usec;      /* between attempts */
        uint64_t stale_lock_sec;       /* a dot-lock older than this, with no live holder, is stale */
        unsigned mbox_flags;           /* MboxFlags */
} MailboxOptions;

typedef struct MailboxOutcome {
        MailStatus status;
        char dsn[8];
        char text[512];
} MailboxOutcome;

/* Fills *ret; for the delivery back ends (mailbox.c, maildir.c). */
void mailbox_outcome_set(MailboxOutcome *ret, MailStatus st, const char *dsn, const char *fmt, ...)
        _printf_(4, 5);
/* The outcome of a failed write: a full quota or file is the mailbox being full (5.2.2, as
 * Postfix), a full file system is temporary. */
void mailbox_write_error(MailboxOutcome *ret, int err, const char *what);

/* A group commit: several messages appended to one mbox under one acquisition of its locks and
 * made durable with one fsync. mailbox_group_open() takes the locks and opens the file (the safe
 * open above); mailbox_group_append() writes one message, checked against mailbox_size_limit with
 * the size the group has reached, and gives it its own outcome: a message that fails is cut back
 * to its own start and hurts no other. Its "ok" holds only once mailbox_group_commit() succeeded;
 * when that fails the file is cut back to its size before the group's first message and every
 * message of the group has failed (temporarily). mailbox_group_close() releases the locks; what
 * was appended since the last commit is cut off first. The dot-lock journal names the size before
 * the group's first message, so a group killed halfway is cut back as a whole by the next delivery.
 *
 * mailbox_group_open() returns 1 when the mailbox is locked and open, 0 with the failure in *ret,
 * negative errno for bad arguments; mailbox_group_append() returns 0 with the outcome in *ret
 * (also for a failed message), negative for bad arguments; mailbox_group_commit() 0 or a negative
 * errno from fsync(2) (-EIO when an earlier failed write could not be cut off). */
typedef struct MailboxDotLock {
        int fd;
        dev_t dev;
        ino_t ino;
} MailboxDotLock;

typedef struct MailboxGroup {
        int dir_fd;                    /* borrowed */
        int fd;
        char name[NAME_MAX + 1];
        char lockname[NAME_MAX + 1];
        MailboxOptions o;
        MailboxDotLock dl;
        uint64_t start_size;           /* before the first message since the last commit */
        uint64_t size;                 /* with everything appended */
        unsigned n_appended;           /* since the last commit */
        bool journaled;                /* the dot-lock names start_size */
        bool dirty;                    /* written or cut since the last commit */
        bool broken;                   /* a failed message could not be cut off */
} MailboxGroup;

int mailbox_group_open(MailboxGroup *g, int dir_fd, const char *name, const MailboxOptions *o,
                       MailboxOutcome *ret);
int mailbox_group_append(MailboxGroup *g, int queue_fd, uint64_t offset, uint64_t size,
                         const MboxEnvelope *env, MailboxOutcome *ret);
int mailbox_group_commit(MailboxGroup *g);
void mailbox_group_close(MailboxGroup *g);

/* Appends the message (content at queue_fd, offset, size) to dir_fd/name. Returns 0 with the
 * outcome in *ret (also for failed deliveries), negative only for bad arguments. */
int mailbox_append(int dir_fd, const char *name, const MailboxOptions *o, int queue_fd,
                   uint64_t offset, uint64_t size, const MboxEnvelope *env, MailboxOutcome *ret);
