/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Delivery into a Maildir (home_mailbox ending in "/"), as the user who owns it (the caller has
 * dropped privileges): the message, with Return-Path: and Delivered-To: in front and no "From "
 * line, is written to tmp/UNIQUE, synced, renamed into new/ and the directory synced, so a crash
 * leaves either nothing in new/ or the whole message. Missing Maildir directories are created
 * (mode 0700). mailbox_size_limit limits each message file, as in Postfix.
 *
 * maildir_deliver() returns 0 with the outcome in *ret, negative only for bad arguments.
 */

#include <stdint.h>

#include "services/local/mailbox.h"

int maildir_deliver(int base_fd, const char *path, const MailboxOptions *o, int queue_fd, uint64_t offset,
                    uint64_t size, const MboxEnvelope *env, MailboxOutcome *ret);
