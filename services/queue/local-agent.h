/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The queue runner's side of local delivery: requests to mta-local, the only program with
 * privileges, over the SOCK_SEQPACKET protocol of local-proto.h, with the queue file passed as
 * SCM_RIGHTS so mta-local reads the content straight from it.
 *
 * Where the requests go: under systemd the runner is not root and connects to the socket of
 * mta-local.socket ($MTA_LOCAL_SOCKET, else MTA_RUNSTATEDIR/local.sock). Started as root, it spawns
 * mta-local itself with local_agent_spawn() before dropping privileges (socketpair, the other end as
 * fd 3 with LISTEN_FDS=1); when nothing listens on the socket it spawns one lazily, which then can
 * only deliver as the runner's own user. mta-local is found beside our own executable, in the build
 * tree's services/local/, in the install directories, or on PATH.
 *
 * local_agent_deliver() returns 0 with the outcome (a dead or silent agent is a temporary failure
 * of that delivery), or a negative errno for local trouble (-ENOMEM).
 */

#include <sys/types.h>

#include "common/config.h"
#include "common/local-proto.h"
#include "common/macro.h"
#include "common/resolve.h"

typedef struct LocalAgent LocalAgent;

typedef struct LocalResult {
        MailStatus status;
        bool forward;                /* the user has a ~/.forward: expand forward_text instead */
        char dsn[16];
        char text[1024];
        char *forward_text;
} LocalResult;

void local_result_done(LocalResult *r);

int local_agent_new(const char *config_dir, unsigned timeout_sec, LocalAgent **ret);
/* How long a reply may take: command_time_limit plus the whole mailbox lock wait, and a margin. */
unsigned local_agent_timeout(const Config *config);
LocalAgent *local_agent_free(LocalAgent *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(LocalAgent *, local_agent_free);

/* Starts mta-local on a socketpair now. */
int local_agent_spawn(LocalAgent *a);

int local_agent_deliver(LocalAgent *a, const LocalRequest *req, int queue_fd, LocalResult *ret);
/* Pipelined: sends all n requests before reading any reply, so that mta-local can put deliveries
 * into one mailbox under one lock and one fsync (mta-local(8)). ret[i] answers reqs[i]; a request
 * that could not be sent or whose reply did not come is a temporary failure.
 *
 * At most LOCAL_AGENT_PIPELINE_MAX requests: a unix datagram socket queues only
 * net.unix.max_dgram_qlen datagrams (the kernel's default is 10; systemd raises it to 512). With
 * more in flight, we could block sending while mta-local blocks sending us replies we do not read
 * yet, and the same between mta-local and its workers. */
#define LOCAL_AGENT_PIPELINE_MAX 8
int local_agent_deliver_many(LocalAgent *a, const LocalRequest *reqs, const int *queue_fds, size_t n,
                             LocalResult *ret);
