/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The queue listing in the format of Postfix's mailq, shared by `mtactl queue` and
 * `mta-sendmail -bp`: a header line, then per message "ID[*!] SIZE ARRIVAL SENDER", the last
 * deferral reasons in parentheses, the pending recipients indented, and a closing
 * "-- N Kbytes in M Requests." ("Mail queue is empty" when there is nothing). '*' marks a message a
 * queue runner is working on (its file is locked), '!' one on hold. Client-supplied text is printed
 * with control characters replaced by '?'.
 *
 * Functions return 0 or a negative errno when the queue directory cannot be read; a message file
 * that vanishes or fails to parse while listing is skipped.
 */

#include <stddef.h>
#include <stdio.h>

#include "common/queue.h"

int mailq_print(FILE *out, const char *queue_dir);

/* Number of entries in each queue subdirectory (indexed by QueueDir; 0 for a missing one). */
int mailq_count(const char *queue_dir, size_t ret[static _QUEUE_DIR_MAX]);
