/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The receiver's view of main.cf and the maps, loaded once and shared by reference: every session
 * holds the settings it started with, so a reload (SIGHUP) changes only sessions that start later.
 * TLS credentials are loaded with them; a reload that cannot read the key (privileges are gone by
 * then) keeps the previous credentials. Functions return 0 or a negative errno; load errors come
 * with a message in *ret_error.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/macro.h"
#include "common/netlist.h"
#include "common/resolve.h"

typedef enum TlsLevel {
        TLS_LEVEL_NONE,
        TLS_LEVEL_MAY,
        TLS_LEVEL_ENCRYPT,
} TlsLevel;

typedef enum RelayDeny {
        RELAY_DEFER,      /* defer_unauth_destination: 454 4.7.1 */
        RELAY_REJECT,     /* reject_unauth_destination: 554 5.7.1 */
} RelayDeny;

typedef struct SmtpTlsContext SmtpTlsContext;

typedef struct SmtpSettings {
        unsigned n_ref;
        Config *config;
        Resolver *resolver;
        NetList *mynetworks;

        char *hostname;
        char *banner;
        char *queue_dir;
        char *myorigin;
        char *mail_owner;
        uid_t mail_owner_uid;     /* (uid_t) -1 when the account does not exist */

        uint64_t message_size_limit;     /* 0: none */
        uint64_t recipient_limit;
        uint64_t hard_error_limit;
        uint64_t soft_error_limit;
        uint64_t error_sleep_usec;
        uint64_t timeout_usec;
        uint64_t line_length_limit;
        uint64_t queue_minfree;
        uint64_t client_connection_limit;   /* per client address, outside mynetworks; 0: none */

        bool permit_mynetworks;
        RelayDeny relay_deny;
        bool helo_required;
        /* smtpd_forbid_bare_newline = yes/reject: a line ending in a bare LF gets 521 and the
         * connection is closed, except for mynetworks and local submission (Postfix's default
         * smtpd_forbid_bare_newline_exclusions = $mynetworks). normalize (default) and no accept
         * it; only CR LF . CR LF ends DATA in every case. */
        bool bare_newline_reject;

        TlsLevel tls_level;
        SmtpTlsContext *tls;      /* NULL: no STARTTLS */
} SmtpSettings;

/* Loads DIR/main.cf (defaults when it is missing), the maps and TLS credentials. With old given,
 * its TLS credentials are reused when the new ones cannot be read. */
int smtp_settings_load(const char *dir, const SmtpSettings *old, SmtpSettings **ret, char **ret_error);
/* The same from an existing Config (takes ownership of it, also on failure); for tests. */
int smtp_settings_new(Config *c, const SmtpSettings *old, SmtpSettings **ret, char **ret_error);
SmtpSettings *smtp_settings_ref(SmtpSettings *s);
SmtpSettings *smtp_settings_unref(SmtpSettings *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpSettings *, smtp_settings_unref);
