/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The durable half of accepting a message, off the event loop: a thread fdatasyncs each queue
 * file, renames it into new/ and then fsyncs new/ once for the whole batch (group commit). Jobs
 * submitted while a batch is being synced form the next batch, so under load one directory fsync
 * covers many messages. Completion is reported back on the event loop through done(), in
 * submission order within a batch. With group commit off (for comparison), every message gets its
 * own file sync, rename and directory sync, one after the other.
 */

#include <stdbool.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "common/queue.h"

typedef struct Committer Committer;

typedef struct CommitJob {
        QueueWriter *writer;      /* owned by the job */
        char *queue_dir;
        int result;
        void *userdata;           /* the connection, or NULL once it went away */
        struct CommitJob *next;
} CommitJob;

typedef void (*committer_done_t)(CommitJob *job, void *userdata);

int committer_new(sd_event *e, bool group, committer_done_t done, void *userdata, Committer **ret);
/* Waits for jobs in flight, reports them, and stops the thread. */
Committer *committer_free(Committer *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Committer *, committer_free);

/* Takes ownership of writer. */
int committer_submit(Committer *c, QueueWriter *writer, const char *queue_dir, void *userdata, CommitJob **ret);
unsigned committer_in_flight(const Committer *c);
void commit_job_free(CommitJob *j);
