/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The queue run: every message in new/ and every deferred message that is due (all of them with
 * flush) is locked (flock; a message another runner holds is skipped), its pending recipients are
 * expanded with the resolver and delivered (locally through mta-local, remotely by SMTP, one session
 * per destination), and the file is then removed (every recipient delivered or bounced) or moved to
 * deferred/ with the next attempt after an exponential backoff. The run repeats over new/ until it
 * is empty, so mail that arrives meanwhile (bounces included) is not left behind.
 *
 * Each delivery of an expanded recipient that succeeded or bounced is appended to done/ID before
 * the recipient's status changes, and is skipped when the message is tried again: a crash between a
 * delivery and its record can repeat that delivery, it can never lose one.
 *
 * runner_run() returns 0 when the run went through (individual deliveries may have failed; they are
 * deferred), or a negative errno when the queue itself could not be read.
 */

#include <stdbool.h>

#include "common/config.h"
#include "common/macro.h"
#include "services/queue/local-agent.h"

typedef struct Runner Runner;

typedef struct RunnerOptions {
        bool flush;               /* treat every deferred message as due */
        char **ids;               /* only these ids (strv), also treated as due; NULL: all */
} RunnerOptions;

/* Takes ownership of agent. */
int runner_new(const Config *c, LocalAgent *agent, const RunnerOptions *o, Runner **ret, char **ret_error);
Runner *runner_free(Runner *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Runner *, runner_free);

int runner_run(Runner *r);

/* Backoff before attempt number attempts+1, in seconds: min doubled per attempt, capped at max. */
uint64_t runner_backoff(uint64_t min, uint64_t max, unsigned attempts);

/* Escapes backslash, TAB and LF as \\ \t \n so a value fits one field of a done/ or defer/ line. */
char *runner_escape_field(const char *s);
