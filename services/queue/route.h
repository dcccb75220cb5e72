/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Where remote mail goes: the relayhost when one is set ("host", "[host]" without MX lookup,
 * "host:port", "[host]:port"), else the MX hosts of the recipient's domain in preference order,
 * falling back to the domain's own A/AAAA records when it has no MX (libc's resolver, so
 * /etc/resolv.conf decides which server is asked). An MX host that names ourselves (myhostname)
 * cuts the list there, as Postfix does: when that leaves nothing, the mail would loop and bounces
 * with 5.4.6.
 *
 * route_resolve() returns 0 and either at least one target, or none and a RouteError saying why
 * (temporary or permanent); -ENOMEM is the only negative return.
 */

#include <stdbool.h>

#include "common/resolve.h"
#include "services/queue/smtp-client.h"

typedef struct RouteError {
        MailStatus status;
        char dsn[16];
        char text[512];
} RouteError;

/* Parses a relayhost value. *ret_host has no brackets; *ret_mx is false for "[host]". */
int route_parse_relayhost(const char *s, char **ret_host, bool *ret_mx, unsigned *ret_port);

/* Builds the list of addresses to try for host (a domain or a relay host). A domain that is an IP
 * literal ("[192.0.2.1]") goes to that address. nxdomain_permanent: a name that does not exist is a
 * permanent failure (recipient domains) rather than a temporary one (relayhost). */
int route_resolve(const char *host, bool mx, unsigned port, const char *myhostname, bool nxdomain_permanent,
                  SmtpTarget **ret, size_t *ret_n, RouteError *ret_error);

void route_targets_free(SmtpTarget *t, size_t n);
