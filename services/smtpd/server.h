/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The receiver's process: one sd-event loop multiplexing every connection on non-blocking sockets
 * (a slow client only ever holds its own small buffers), the listening sockets systemd passed, the
 * committer thread, and the life cycle: exit after an idle period without sessions (socket
 * activation starts us again), SIGTERM (stop accepting, let sessions in flight finish within a
 * bound, exit 0) and SIGHUP (reload main.cf and the maps for new sessions). Functions return 0 or
 * a negative errno and log what went wrong.
 */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "common/macro.h"
#include "services/smtpd/smtp-settings.h"

typedef struct Server Server;

typedef struct ServerOptions {
        const char *config_dir;
        uint64_t idle_usec;        /* 0: never exit for idleness */
        uint64_t shutdown_usec;    /* how long SIGTERM waits for sessions in flight */
        uint64_t shutdown_grace_usec; /* how long after SIGTERM sessions are served as usual */
        unsigned max_sessions;
        int commit_mode;           /* CommitMode */
} ServerOptions;

/* Takes a reference on settings. */
int server_new(sd_event *e, SmtpSettings *settings, const ServerOptions *options, Server **ret);
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

/* Takes the sockets from sd_listen_fds_with_names(): "smtp" (or unnamed) TCP sockets and one
 * "submit" unix stream socket for local submission. Anything else is refused (-EINVAL). */
int server_take_listen_fds(Server *s);
/* Adds one listening socket (tests). local: the submission socket. */
int server_add_listener(Server *s, int fd, bool local);

/* Creates the queue directories, arms signals and timers, runs the loop; returns the exit code. */
int server_run(Server *s);
