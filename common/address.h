/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Mail addresses as SMTP carries them (RFC 5321 paths) and as maps and routing need them.
 *
 * We never do sender-specified routing: "user%host@us", "host!user@us", "user@host@us" and
 * quoted "user@host"@us are plain local parts of our domain (and so unknown users), and a source
 * route "@a,@b:user@c" is stripped to "user@c" before any policy check. This is what keeps those
 * forms from ever opening a relay.
 *
 * Functions return 0, -EINVAL for a malformed address (with no output changed), or -ENOMEM.
 */

#include <stdbool.h>
#include <stddef.h>

/*
 * Parses "<path> params" as it follows "MAIL FROM:" or "RCPT TO:" (leading white space allowed).
 * *ret_addr gets the address without angle brackets ("" for the null sender <>), *ret_params
 * points into arg at the ESMTP parameters (may be ""). Rejects control characters, unbalanced
 * quotes, and addresses longer than 254 octets (local part 64 is not enforced, as Postfix).
 */
int address_parse_path(const char *arg, char **ret_addr, const char **ret_params);

/* Splits at the last '@' outside quotes. A missing domain gives domain "". The domain is folded to
 * lower case; the local part is returned as written, quotes removed. */
int address_split(const char *addr, char **ret_local, char **ret_domain);

/* Joins local and domain, quoting the local part when RFC 5321 needs it. */
int address_join(const char *local, const char *domain, char **ret);

/* Splits "user+ext" at the first character found in delimiters (recipient_delimiter). With no
 * delimiter present, *ret_ext is NULL. */
int address_split_extension(const char *local, const char *delimiters, char **ret_base, char **ret_ext);

/* An IP literal domain such as "[192.0.2.1]" or "[IPv6:::1]". */
bool address_domain_is_literal(const char *domain);

/* Case-folded copy used as a map or comparison key. */
int address_lower(const char *addr, char **ret);
