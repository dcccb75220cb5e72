/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The request protocol between the queue runner and mta-local, the only program with privileges.
 * The transport is a SOCK_SEQPACKET unix socket: under systemd the runner connects to
 * $runstatedir/local.sock (mta-local.socket, Accept=yes, one mta-local per connection); without it
 * the runner makes a socketpair and starts mta-local with the other end as fd 3 (LISTEN_FDS=1), so
 * mta-local always takes exactly one connected socket from sd_listen_fds().
 *
 * One datagram is one request or one reply, encoded as queue records ("T<len>:<bytes>\n"); a
 * request carries the open queue file as SCM_RIGHTS, so the content is read straight from it.
 *
 * Request letters: K kind ("mailbox", "file", "command"), U account whose rights the delivery
 * runs with, T target (file path or command; not for mailbox), S sender, R final recipient
 * address, O original recipient, X extension, Q queue id, A arrival time, o content offset,
 * n content size, F flags ("noforward": do not read ~/.forward).
 * Reply letters: s status ("ok", "tempfail", "permfail", "forward"), d enhanced status code,
 * r text; for "forward", f is the text of the user's ~/.forward, for the runner to expand.
 *
 * Encoding helpers return 0 or -ENOBUFS when the buffer is too small; the decoder returns -EBADMSG
 * for anything malformed, including an unknown or repeated letter.
 */

#include <stddef.h>
#include <stdint.h>

#define LOCAL_PROTO_MAX 65536

typedef struct LocalRequest {
        const char *kind;
        const char *user;
        const char *target;
        const char *sender;
        const char *recipient;
        const char *original;
        const char *extension;
        const char *queue_id;
        uint64_t arrival;
        uint64_t offset;
        uint64_t size;
        const char *flags;
} LocalRequest;

typedef struct LocalReply {
        const char *status;
        const char *dsn;
        const char *text;
        const char *forward;
} LocalReply;

/* Encoders write into buf and set *ret_len. Strings that are NULL are left out. */
int local_request_encode(const LocalRequest *r, char *buf, size_t size, size_t *ret_len);
int local_reply_encode(const LocalReply *r, char *buf, size_t size, size_t *ret_len);

/* Decoders make the string fields point into buf, which they NUL-terminate in place (buf must have
 * one spare byte after len). */
int local_request_decode(char *buf, size_t len, LocalRequest *ret);

/* Sends one datagram with fd attached (SCM_RIGHTS), as a request carries the queue file.
 * 0, or a negative errno; -EIO when the datagram went out short. */
int local_proto_send_with_fd(int sock, const char *buf, size_t len, int fd);
int local_reply_decode(char *buf, size_t len, LocalReply *ret);
