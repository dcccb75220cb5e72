/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Non-delivery reports: an RFC 3464 delivery status notification (multipart/report;
 * report-type=delivery-status) from MAILER-DAEMON@$myorigin with the null sender, carrying a
 * readable explanation, one message/delivery-status part with a block per failed recipient, and
 * the original message's headers as text/rfc822-headers. It is written into the queue like any
 * message (new/), so it is delivered, retried and logged the same way.
 *
 * Text that came from a remote server or from a client (replies, addresses) is stripped of
 * control characters before it goes into a header field, so it cannot add fields or parts.
 *
 * bounce_write() returns 0 and the new message's id, or a negative errno (-ENOSPC ...): the caller
 * must then not mark the recipients bounced, so the bounce is tried again later.
 */

#include <stddef.h>

#include "common/config.h"
#include "common/queue.h"

typedef struct BounceRecipient {
        const char *final;          /* Final-Recipient */
        const char *original;       /* the envelope recipient it came from */
        const char *dsn;            /* "5.1.1"; 4.x.x when a deferral expired */
        const char *remote_mta;     /* host name, or NULL */
        const char *diag_type;      /* "smtp" or "x-unix" */
        const char *diagnostic;     /* Diagnostic-Code text */
        const char *text;           /* readable reason */
} BounceRecipient;

/* Builds the report (without writing it anywhere); for tests. */
int bounce_format(const Config *c, const QueueFile *f, const BounceRecipient *r, size_t n,
                  const char *headers, size_t headers_len, uint64_t now, char **ret, size_t *ret_len);

/* Builds the report for f's sender and commits it into the queue. */
int bounce_write(const Config *c, const char *queue_dir, QueueFile *f, const BounceRecipient *r, size_t n,
                 char ret_id[static QUEUE_ID_MAX]);
