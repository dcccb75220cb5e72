/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A message as a local program hands it to sendmail: read whole from a stream, line ends
 * normalized to LF, split into header fields and body, recipients extracted for -t, and finished
 * the way Postfix finishes local submissions (Bcc:, Resent-Bcc: and Return-Path: removed; Date:,
 * From: and Message-ID: added when missing). The Message owns its buffer; message_free() accepts
 * NULL.
 *
 * Input rules (sendmail's): CRLF becomes LF; a last line without a newline gets one; a leading
 * mbox "From " line is dropped; unless ignore_dots is set, a line holding only "." ends the input
 * (dots are not unstuffed: this is not SMTP). The header section is the leading run of lines
 * that are header fields or their continuations; it ends at an empty line or at the first line
 * that is neither (then the whole rest is body).
 *
 * Functions return 0 or a negative errno: -EFBIG when the input exceeds max_size (0: no limit),
 * -EIO or another errno from reading, -ENOMEM.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/macro.h"

typedef struct Message Message;

int message_read(FILE *f, bool ignore_dots, uint64_t max_size, Message **ret);
/* The same from a buffer (tests, the local SMTP session). */
int message_from_buffer(const char *data, size_t len, Message **ret);
Message *message_free(Message *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Message *, message_free);

size_t message_n_headers(const Message *m);
/* True when a header field of that name (case-insensitive) is present and not removed. */
bool message_has_header(const Message *m, const char *name);
/* The unfolded value of the n-th field called name (from 0), without the leading white space;
 * -ENOENT when there is no such field. */
int message_header_value(const Message *m, const char *name, size_t n, char **ret);

/* Recipients for -t: the addresses of every To:, Cc: and Bcc: field, or, when the message has
 * any Resent-To:, Resent-Cc: or Resent-Bcc: field (it is being re-sent), of those only. Appends
 * to *list unqualified and unvalidated. */
int message_extract_recipients(const Message *m, char ***list);

typedef struct MessageFinish {
        const char *from_address;  /* for a missing From: */
        const char *full_name;     /* may be NULL or "" */
        const char *message_id;    /* "<id@host>", for a missing Message-ID: */
        time_t date;               /* for a missing Date: */
        const char *prepend;       /* whole header field(s) with final LF put in front, or NULL */
} MessageFinish;

/* Removes Bcc:, Resent-Bcc: and Return-Path:, adds the missing headers at the end of the header
 * section, and builds the content. May be called once. */
int message_finish(Message *m, const MessageFinish *info);
/* The finished content (LF line ends); NULL before message_finish(). */
const char *message_content(const Message *m, size_t *ret_len);
/* True when the finished content has bytes >= 0x80. */
bool message_is_8bit(const Message *m);

/* Formats t as an RFC 5322 date ("Thu, 03 Dec 2026 17:04:54 +0000") in local time. */
int message_format_date(time_t t, char *buf, size_t size);
/* "Full Name <addr>" with the name quoted as RFC 5322 needs, or "addr" with no name. */
int message_format_mailbox(const char *full_name, const char *addr, char **ret);
