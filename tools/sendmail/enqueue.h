/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Writing a finished message straight into the queue, for root and mail_owner (the direct path,
 * which works with no service running). The queue belongs to mail_owner: when root calls
 * enqueue_message(), a child process drops to mail_owner and writes, so every file and directory
 * it creates belongs to mail_owner, and the caller stays root (to save a dead letter, say).
 *
 * A message written is logged to the journal (MTA_QUEUE_ID, MTA_SENDER, MTA_SIZE), never to stderr:
 * cron mails whatever sendmail prints.
 *
 * Returns a sysexits(3) code, the failure explained on stderr: EX_OK, EX_TEMPFAIL when the queue
 * cannot be written (missing or unwritable directory, full disk), EX_CONFIG when mail_owner does
 * not exist, EX_OSERR for local trouble (memory, fork), EX_SOFTWARE when the child died.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/queue.h"

typedef struct EnqueueRequest {
        const char *queue_dir;
        const char *mail_owner;
        QueueEnvelopeInfo info;
        char * const *recipients;
        const char *content;
        size_t content_len;
        bool verbose;             /* say "Queued as ID" on stderr */
        const char *received_by;  /* myhostname: put a Received: field in front, as mta-smtpd does
                                   * for local submissions; NULL for none */
        uid_t uid;                /* the submitting user, for Received: and the log */
} EnqueueRequest;

/* ret_id (QUEUE_ID_MAX bytes, or NULL) gets the queue id on success. */
int enqueue_message(const EnqueueRequest *req, char *ret_id);
