/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Address lists such as mynetworks: IPv4 and IPv6 networks in CIDR form ("127.0.0.0/8",
 * "[::1]/128", "::1/128", "192.0.2.1"), separated by commas and/or white space, as Postfix writes
 * them. IPv4-mapped IPv6 clients (::ffff:a.b.c.d) match IPv4 entries. netlist_parse() returns
 * -EINVAL for a malformed entry and names it in *ret_error.
 */

#include <stdbool.h>
#include <sys/socket.h>

#include "common/macro.h"

typedef struct NetList NetList;

int netlist_parse(const char *spec, NetList **ret, char **ret_error);
NetList *netlist_free(NetList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(NetList *, netlist_free);

bool netlist_match(const NetList *l, const struct sockaddr *sa);
/* Matches an address given as text ("192.0.2.1", "::1"); false when it does not parse. */
bool netlist_match_string(const NetList *l, const char *address);
