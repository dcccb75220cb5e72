/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Address lists as mail programs write them in To:, Cc: and Bcc: header fields and on the sendmail
 * command line (RFC 5322 section 3.4, with the obsolete forms still seen in the wild): "addr",
 * "Name <addr>", "addr (comment)", groups "name: a, b;", "undisclosed-recipients:;". Only the
 * addresses are kept: comments and display names are dropped, quoted local parts stay quoted, a
 * source route "@a,@b:" is stripped. Parsing is lenient, as Postfix's is: an unclosed comment or
 * angle bracket ends at the end of the text (an unclosed quote is kept, so that the address is
 * then refused as invalid), and words separated by white space alone ("a@x b@y", as old mail
 * programs wrote) are separate addresses. Whether an address is acceptable is a
 * separate question, answered by addrlist_address_valid().
 *
 * Functions return 0 or -ENOMEM (addrlist_parse() may then have appended part of the list).
 */

#include <stdbool.h>

/* Appends every address found in text to the string vector *list. */
int addrlist_parse(const char *text, char ***list);

/* True for an address we can put into an SMTP path: 1..254 octets, no control characters, no
 * white space, angle brackets, commas or parentheses outside quotes, balanced quotes. */
bool addrlist_address_valid(const char *addr);

/* True when addr has an '@' outside quotes (a domain part). */
bool addrlist_address_qualified(const char *addr);

/* Appends "@domain" to an address that has none; copies it otherwise. */
int addrlist_qualify(const char *addr, const char *domain, char **ret);
