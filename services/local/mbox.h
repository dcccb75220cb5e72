/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The mbox message writer: the "From " separator line, Return-Path: and Delivered-To:, then the
 * message with lines that begin with "From " quoted as ">From " (what Postfix's local(8) writes:
 * mboxo, ">From " lines are left alone), a final newline when the message lacks one and an empty
 * line after it. The same writer feeds |command deliveries, without quoting and without the empty
 * line, as Postfix does.
 *
 * A writer either writes to an fd or, with fd < 0, only counts, so that the size of a delivery is
 * known exactly before anything is written (mailbox_size_limit). Functions return 0 or a negative
 * errno from write(2); the count in bytes is of everything accepted so far.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum MboxFlags {
        MBOX_QUOTE_FROM = 1 << 0,
        MBOX_BLANK_LINE = 1 << 1,
        MBOX_NO_FROM_LINE = 1 << 2,   /* Maildir files: no "From " separator line */
} MboxFlags;

typedef struct MboxEnvelope {
        const char *sender;       /* "" for the null sender: MAILER-DAEMON in the From line */
        const char *recipient;    /* Delivered-To:; NULL leaves it out */
        time_t date;              /* for the From line */
} MboxEnvelope;

#define MBOX_BUFFER_SIZE (64 * 1024)

typedef struct MboxWriter {
        int fd;                   /* < 0: count only */
        unsigned flags;
        int match;                /* bytes of "From " matched at a line start; -1 inside a line */
        bool empty;               /* no content byte seen yet */
        char last;                /* last content byte written */
        uint64_t bytes;
        size_t n;
        char buf[MBOX_BUFFER_SIZE];
} MboxWriter;

void mbox_writer_init(MboxWriter *w, int fd, unsigned flags);
int mbox_writer_header(MboxWriter *w, const MboxEnvelope *env);
int mbox_writer_body(MboxWriter *w, const void *data, size_t len);
/* Ends the message (pending bytes, final newline, empty line) and writes out the buffer. */
int mbox_writer_finish(MboxWriter *w);

/* The whole message from content at queue_fd (offset, size), as mbox_writer_*() would write it;
 * -EBADMSG when the queue file is shorter than that. */
int mbox_write_message(int fd, int queue_fd, uint64_t offset, uint64_t size, const MboxEnvelope *env,
                       unsigned flags, uint64_t *ret_bytes);

/* Replaces bytes that could break the mbox or header syntax (controls, and for the From line white
 * space) so that envelope data can never add a line. Returns a new string or NULL. */
char *mbox_sanitize(const char *s, bool from_line);

/* 1 when the message header (content at queue_fd, offset, size; read up to its first empty line
 * or 256 KiB) already has "Delivered-To: recipient" (case-insensitive), as Postfix's local(8)
 * checks to stop forwarding loops; 0 when not; negative errno on a read error. */
int mbox_has_delivered_to(int queue_fd, uint64_t offset, uint64_t size, const char *recipient);
