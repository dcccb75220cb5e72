/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The mail queue on disk, shared by the receiver and sendmail (writers), the queue runner and
 * mtactl (readers). Durability comes first: a message is in new/ only after its file and the
 * directory entry are on disk, so a crash at any instant leaves a complete queued message or
 * nothing that will ever be delivered. mta-queue(5) documents the layout and format.
 *
 * Layout under queue_directory:
 *   incoming/  files being written (name = queue id); the writer holds flock(LOCK_EX) while it
 *              writes; unlocked leftovers are crash debris and are removed by the runner
 *   new/       committed and not yet tried; the path unit watches this directory
 *   deferred/  tried, with recipients still pending
 *   hold/      put on hold by the administrator
 *   corrupt/   files that failed to parse, moved aside and never deleted
 *   defer/     per-message text of the last deferral reasons (informational, for mailq)
 *   done/      per-message log of expanded deliveries already made (avoids repeats after a retry)
 *
 * File format, version 1: the magic "MTAQ1\n", then records "T<len>:<bytes>\n" with T one letter and
 * len decimal (the M record's len has fixed width 20 so it can be filled in after streaming). As
 * every record is length-prefixed, no byte a client sends (CR, LF, NUL) can forge a record.
 *   I id, T arrival time (s), W schedule (fixed 31 bytes "%020llu %010u": next attempt time and
 *   attempts so far, rewritten in place), S sender ("" = null sender), C client address, H helo
 *   name, P protocol, U submitting local user, E ESMTP parameters (e.g. "BODY=8BITMIME"),
 *   R recipient (first byte is its status, rewritten in place: 'P' pending, 'D' delivered, 'B'
 *   bounced; then the address), M message content (with LF line ends, no dot-stuffing),
 *   Z end marker (len 0), which must be last: a file without it is incomplete.
 * Envelope records may come before or after M; readers reject unknown letters and duplicates of
 * single-valued records as corrupt (-EBADMSG).
 *
 * Functions return 0 or a negative errno: -ENOSPC/-EDQUOT when the disk is full (the receiver
 * answers 452/451), -EBADMSG for a corrupt file, -EWOULDBLOCK when another process holds the lock.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"

#define QUEUE_ID_MAX 32
#define QUEUE_SCHEDULE_LEN 31

typedef enum QueueDir {
        QUEUE_INCOMING,
        QUEUE_NEW,
        QUEUE_DEFERRED,
        QUEUE_HOLD,
        QUEUE_CORRUPT,
        QUEUE_DEFER_LOG,
        QUEUE_DONE_LOG,
        _QUEUE_DIR_MAX,
} QueueDir;

const char *queue_dir_name(QueueDir d);     /* "incoming", ... */

/* Creates missing subdirectories (mode 0700). */
int queue_dirs_ensure(const char *queue_dir);

/* A fresh id: 20 upper-case hex digits, seconds, microseconds and random bits, so ids sort by
 * arrival and never repeat. */
int queue_id_new(char ret[static QUEUE_ID_MAX]);
bool queue_id_valid(const char *id);

/* ---- writing ---- */

typedef struct QueueWriter QueueWriter;

typedef struct QueueEnvelopeInfo {
        const char *sender;       /* "" for <> */
        const char *client;       /* "192.0.2.1", "local", ... may be NULL */
        const char *helo;         /* may be NULL */
        const char *protocol;     /* "ESMTP", "ESMTPS", "SMTP", "LOCAL"; may be NULL */
        const char *user;         /* submitting local user; may be NULL */
        const char *esmtp;        /* e.g. "BODY=8BITMIME SMTPUTF8"; may be NULL */
} QueueEnvelopeInfo;

/* Creates incoming/ID with O_EXCL and locks it. */
int queue_writer_new(const char *queue_dir, QueueWriter **ret);
QueueWriter *queue_writer_free(QueueWriter *w);   /* unlinks the file unless it was committed */
DEFINE_TRIVIAL_CLEANUP_FUNC(QueueWriter *, queue_writer_free);

const char *queue_writer_id(const QueueWriter *w);
int queue_writer_fd(const QueueWriter *w);

int queue_writer_set_envelope(QueueWriter *w, const QueueEnvelopeInfo *info, uint64_t arrival);
int queue_writer_add_recipient(QueueWriter *w, const char *address);
size_t queue_writer_n_recipients(const QueueWriter *w);

/* Appends message content (LF line ends). Buffered; the first call writes the records so far. */
int queue_writer_write(QueueWriter *w, const void *data, size_t len);
uint64_t queue_writer_size(const QueueWriter *w);   /* content bytes so far */

/* The commit, in steps so that a caller can batch syncs over several messages (group commit):
 *   close_data: flush, fill in the M length, write later records and Z (no sync)
 *   sync:       fdatasync the file
 *   link:       rename incoming/ID to new/ID, never over an existing file (the directory still
 *               needs queue_sync_dir)
 * queue_writer_commit() does all of them and syncs new/. */
int queue_writer_close_data(QueueWriter *w);
int queue_writer_sync(QueueWriter *w);
int queue_writer_link(QueueWriter *w);
/* Renames before the data is synced, for a caller that then syncs the whole file system (syncfs)
 * before it acknowledges: one flush instead of two. A crash before that sync may leave an incomplete
 * file in new/, which readers reject as corrupt; it was never acknowledged. */
int queue_writer_link_unsynced(QueueWriter *w);
int queue_writer_commit(QueueWriter *w);
int queue_sync_dir(const char *queue_dir, QueueDir d);

/* ---- reading ---- */

typedef enum RecipientStatus {
        RECIPIENT_PENDING = 'P',
        RECIPIENT_DELIVERED = 'D',
        RECIPIENT_BOUNCED = 'B',
} RecipientStatus;

typedef struct QueueRecipient {
        char *address;
        RecipientStatus status;
        off_t status_offset;      /* where the status byte is, for in-place updates */
} QueueRecipient;

typedef struct QueueFile {
        int fd;
        char *path;
        char id[QUEUE_ID_MAX];
        uint64_t arrival;
        uint64_t next_attempt;
        unsigned attempts;
        off_t schedule_offset;
        char *sender;
        char *client;
        char *helo;
        char *protocol;
        char *user;
        char *esmtp;
        QueueRecipient *recipients;
        size_t n_recipients;
        off_t content_offset;
        uint64_t content_size;
} QueueFile;

/* Opens and parses a queue file; flags O_RDONLY or O_RDWR. With lock, takes flock(LOCK_EX|LOCK_NB)
 * and then checks that the path still names the same file (it may have moved meanwhile: -ENOENT). */
int queue_file_open(const char *path, int flags, bool lock, QueueFile **ret);
/* Same, from a directory and an id. */
int queue_file_open_id(const char *queue_dir, QueueDir d, const char *id, int flags, bool lock,
                       QueueFile **ret);
QueueFile *queue_file_free(QueueFile *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(QueueFile *, queue_file_free);

/* In-place updates (pwrite, no sync); queue_file_sync() makes them durable. */
int queue_file_set_recipient_status(QueueFile *f, size_t index, RecipientStatus status);
int queue_file_set_schedule(QueueFile *f, uint64_t next_attempt, unsigned attempts);
int queue_file_sync(QueueFile *f);

/* Moves the file between directories (rename) and syncs both; f->path follows. */
int queue_file_move(QueueFile *f, const char *queue_dir, QueueDir to);
/* Removes the file and its defer/ and done/ companions. The directory is not synced: callers
 * remove a message only after its deliveries are durable, so a lost unlink means a repeat, not a loss. */
int queue_file_remove(QueueFile *f, const char *queue_dir);

/* Reads the content in chunks: calls cb until it returns non-zero or the content ends. */
typedef int (*queue_content_cb)(const void *data, size_t len, void *userdata);
int queue_file_read_content(QueueFile *f, queue_content_cb cb, void *userdata);

/* Lists ids in one subdirectory, sorted (oldest first). */
int queue_list(const char *queue_dir, QueueDir d, char ***ret_ids);

/* Parses a buffer holding a whole queue file (the fuzz target and tests use it). */
int queue_file_parse_buffer(const void *buf, size_t len, QueueFile **ret);
