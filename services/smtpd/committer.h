/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The durable half of accepting a message, off the event loop: a thread fdatasyncs each queue
 * file, renames it into new/ and then fsyncs new/ once for the whole batch (group commit). Jobs
 * submitted while a batch is being synced form the next batch, so under load one directory fsync
 * covers many messages. Completion is reported back on the event loop through done(), in
 * submission order within a batch. COMMIT_SYNCFS replaces the per-file fdatasync of a batch with one
 * syncfs() of the queue's file system (data first, then the renames, then the directory fsync, so
 * the order stays the same), through a descriptor of the queue directory opened before any message
 * was written: its write-back error report (Linux 5.8 and later; before that, every file is synced
 * on its own) then covers every file of the batch. After a syncfs() error, which nobody can pin on
 * one file, the committer syncs every file on its own. COMMIT_AUTO, the default, picks per batch:
 * syncfs() for three messages or more, per-file fdatasync below that (syncfs() also flushes other writers' data, which costs
 * more than it saves for one file; measured in tests/bench/smtpd-bench.py). COMMIT_RENAME_SYNCFS
 * renames the batch into new/ first and then makes data and names durable with one syncfs(): one
 * flush per batch instead of two, at the price that a crash before that syncfs() may leave an
 * incomplete file in new/, which readers move to corrupt/ (it was never acknowledged, and a runner
 * that delivers it before the 250 causes at most a repeat when the client retries). COMMIT_SINGLE
 * (for comparison) gives every message its own file sync, rename and directory sync, one after
 * the other.
 */

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "common/queue.h"

typedef struct Committer Committer;

typedef enum CommitMode {
        COMMIT_SINGLE,
        COMMIT_GROUP,
        COMMIT_SYNCFS,
        COMMIT_AUTO,
        COMMIT_RENAME_SYNCFS,
        _COMMIT_MODE_MAX,
} CommitMode;

const char *commit_mode_to_string(CommitMode m);
int commit_mode_from_string(const char *s);

typedef struct CommitJob {
        QueueWriter *writer;      /* owned by the job */
        char *queue_dir;
        int result;
        void *userdata;           /* the connection, or NULL once it went away */
        struct CommitJob *next;
} CommitJob;

typedef void (*committer_done_t)(CommitJob *job, void *userdata);

/* queue_dir: where the messages normally go, opened now, before any of them is written, so that
 * syncfs() through it can vouch for their data. */
int committer_new(sd_event *e, CommitMode mode, const char *queue_dir, committer_done_t done, void *userdata,
                  Committer **ret);
/* Waits for jobs in flight, reports them, and stops the thread. */
Committer *committer_free(Committer *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Committer *, committer_free);

/* Takes ownership of writer. */
int committer_submit(Committer *c, QueueWriter *writer, const char *queue_dir, void *userdata, CommitJob **ret);
unsigned committer_in_flight(const Committer *c);
void commit_job_free(CommitJob *j);
