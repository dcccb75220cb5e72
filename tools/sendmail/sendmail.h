/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What mta-sendmail does once its options are parsed: submit a message (-bm), show the queue
 * (-bp), rebuild the alias database (-bi), flush the queue (-q) or speak SMTP on stdin/stdout
 * (-bs). Root and mail_owner write into the queue directly (this works with no service running);
 * everybody else submits through the submission socket (see submit.h). sendmail_run() returns a
 * sysexits(3) code and explains failures on stderr; mta-sendmail(1) documents each code.
 */

#include <stdbool.h>

typedef enum SendmailMode {
        SENDMAIL_DELIVER,     /* -bm */
        SENDMAIL_MAILQ,       /* -bp, "mailq" */
        SENDMAIL_NEWALIASES,  /* -bi, -I, "newaliases" */
        SENDMAIL_FLUSH,       /* -q */
        SENDMAIL_SMTP,        /* -bs */
} SendmailMode;

typedef struct SendmailArgs {
        SendmailMode mode;
        const char *config_dir;    /* -C, or NULL */
        const char *sender;        /* -f / -r, or NULL */
        const char *full_name;     /* -F, or NULL */
        const char *body_type;     /* -B: "7BIT" or "8BITMIME", or NULL */
        const char *alias_file;    /* -oA, or NULL */
        bool extract;              /* -t */
        bool ignore_dots;          /* -i, -oi */
        unsigned verbose;          /* -v */
        char **recipients;         /* the arguments after the options; not owned */
} SendmailArgs;

int sendmail_run(const SendmailArgs *args);
