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

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "services/local/deliver.h"

int local_server_check_peer(int fd, uid_t mail_owner);
int local_server_run(int fd, const LocalSettings *s);
/* Receives one datagram and at most one fd (MSG_CMSG_CLOEXEC): 0 at EOF, 1 with a datagram, a
 * negative errno on error. A datagram that does not fit (*ret_len is then SIZE_MAX), or that brings
 * more than one fd, comes back with *ret_fd = -EBADF, to be answered as malformed. */
int local_server_receive(int fd, char *buf, size_t size, size_t *ret_len, int *ret_fd);
/* Whether a datagram is already waiting on fd (poll with no timeout): pipelining and group commit
 * take the next request only when it is there, never waiting for it. */
bool local_server_readable_now(int fd);
