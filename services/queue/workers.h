/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Parallel queue runs. Deliveries wait on disks and remote servers far more than on the CPU, so
 * with a backlog mta-queue forks a few worker processes that run the same queue scan side by side;
 * the per-message lock (see runner.h) gives each message to exactly one of them. Each worker has its
 * own local delivery agent and SMTP connections.
 *
 * workers_start() returns 0 in a worker child and 1 in the parent (which works too), or a negative
 * errno when fork fails (the caller then runs alone). workers_wait() returns the worst exit status.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct Workers {
        pid_t *pids;
        size_t n;
} Workers;

/* How many processes to use for this run: 1 for a small backlog, up to 4 (and the number of CPUs,
 * at least 2) for a large one. */
unsigned workers_count(const char *queue_dir, bool flush, bool only_ids);

int workers_start(Workers *w, unsigned n);
int workers_wait(Workers *w);
