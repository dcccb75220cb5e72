/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The request loop of mta-local on one connected SOCK_SEQPACKET socket: receive a request with the
 * queue file as SCM_RIGHTS, deliver, send the reply, until the peer closes. Only root, the
 * mail_owner account or our own uid may be the peer (SO_PEERCRED): anyone else could otherwise
 * ask for deliveries into any mailbox.
 *
 * local_server_check_peer() returns 0 or -EPERM; local_server_run() returns 0 when the peer
 * closed, a negative errno when the socket failed.
 */

#include <sys/types.h>

#include "services/local/deliver.h"

int local_server_check_peer(int fd, uid_t mail_owner);
int local_server_run(int fd, const LocalSettings *s);
