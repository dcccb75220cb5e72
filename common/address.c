/* SPDX-License-Identifier: MIT */
/*
 * Envelope addresses. The parser is deliberately small: it finds the path between the angle
 * brackets with quotes, backslash escapes and domain literals taken into account, strips a source
 * route, and refuses what is not a plausible mailbox. It never interprets '%', '!' or a second '@'
 * as routing: those stay part of the local part (see address.h).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/macro.h"
#include "common/strv.h"

/* RFC 5321 4.5.3.1.3: a path is at most 256 octets with its brackets, so 254 without. */
#define ADDRESS_MAX 254

/* Checks quotes, escapes and brackets of a bare address [p, e) and returns where it may be cut: the
 * first unquoted space, '>' or the end. -EINVAL on imbalance or a control character. */
static int scan_address(const char *p, const char *e, const char **ret_end) {
        bool quoted = false;
        int bracket = 0;

        for (; p < e; p++) {
                unsigned char ch = (unsigned char) *p;

                if (ch < 0x20 || ch == 0x7f)
                        return -EINVAL;
                if (*p == '\\') {
                        if (p + 1 >= e || (unsigned char) p[1] < 0x20 || p[1] == 0x7f)
                                return -EINVAL;
                        p++;
                        continue;
                }
                if (quoted) {
                        if (*p == '"')
                                quoted = false;
                        continue;
                }
                if (*p == '"')
                        quoted = true;
                else if (*p == '[') {
                        if (bracket)
                                return -EINVAL;
                        bracket = 1;
                } else if (*p == ']') {
                        if (!bracket)
                                return -EINVAL;
                        bracket = 0;
                } else if (!bracket && (*p == '>' || *p == ' ' || *p == '\t'))
                        break;
                else if (*p == '<')
                        return -EINVAL;
        }
        if (quoted || bracket)
                return -EINVAL;
        *ret_end = p;
        return 0;
}

/* "@a,@b:user@c" -> "user@c". Returns where the mailbox starts, or NULL when the route is malformed. */
static const char *strip_source_route(const char *p, const char *e) {
        if (p >= e || *p != '@')
                return p;
        for (const char *c = p; c < e; c++) {
                if (*c == ':')
                        return c + 1 < e ? c + 1 : NULL;
                if (*c == '"' || *c == '<')
                        return NULL;
        }
        return NULL;
}

int address_parse_path(const char *arg, char **ret_addr, const char **ret_params) {
        const char *p = arg, *start, *end, *after;
        char *addr;
        int r;

        while (*p == ' ' || *p == '\t')
                p++;

        if (*p == '<') {
                const char *stop = p + 1 + strlen(p + 1);
                start = p + 1;
                r = scan_address(start, stop, &end);
                if (r < 0)
                        return r;
                if (*end != '>')
                        return -EINVAL;   /* no closing bracket, or a space inside */
                after = end + 1;
        } else {
                /* Postfix accepts a path without brackets (strict_rfc821_envelopes = no). */
                const char *stop = p + strlen(p);
                start = p;
                r = scan_address(start, stop, &end);
                if (r < 0)
                        return r;
                if (*end == '>')
                        return -EINVAL;
                if (end == start)
                        return -EINVAL;
                after = end;
        }
        if (*after && *after != ' ' && *after != '\t')
                return -EINVAL;

        if (end > start) {
                start = strip_source_route(start, end);
                if (!start)
                        return -EINVAL;
        }
        if ((size_t) (end - start) > ADDRESS_MAX)
                return -EINVAL;
        /* A lone "@domain" or "user@" is no mailbox. */
        if (end > start && (*start == '@' || end[-1] == '@'))
                return -EINVAL;

        addr = strndup(start, (size_t) (end - start));
        if (!addr)
                return -ENOMEM;
        while (*after == ' ' || *after == '\t')
                after++;
        *ret_addr = addr;
        if (ret_params)
                *ret_params = after;
        return 0;
}

/* The last '@' that is outside quotes and not escaped, or NULL. Fails on an unbalanced quote. */
static int find_at(const char *addr, const char **ret) {
        const char *at = NULL;
        bool quoted = false;

        for (const char *p = addr; *p; p++) {
                if (*p == '\\' && p[1]) {
                        p++;
                        continue;
                }
                if (*p == '"')
                        quoted = !quoted;
                else if (*p == '@' && !quoted)
                        at = p;
        }
        if (quoted)
                return -EINVAL;
        *ret = at;
        return 0;
}

int address_split(const char *addr, char **ret_local, char **ret_domain) {
        _cleanup_free_ char *local = NULL, *domain = NULL;
        const char *at, *e;
        char *d;
        bool quoted = false;
        int r;

        r = find_at(addr, &at);
        if (r < 0)
                return r;
        e = at ? at : addr + strlen(addr);

        local = malloc((size_t) (e - addr) + 1);
        if (!local)
                return -ENOMEM;
        d = local;
        for (const char *p = addr; p < e; p++) {
                if (*p == '\\' && p + 1 < e) {
                        *d++ = *++p;
                        continue;
                }
                if (*p == '"') {
                        quoted = !quoted;
                        continue;
                }
                *d++ = *p;
        }
        *d = 0;

        domain = strdup(at ? at + 1 : "");
        if (!domain)
                return -ENOMEM;
        ascii_strlower(domain);

        *ret_local = TAKE_PTR(local);
        *ret_domain = TAKE_PTR(domain);
        return 0;
}

static bool is_atext(char c) {
        return isalnum((unsigned char) c) || strchr("!#$%&'*+-/=?^_`{|}~", c) ||
                (unsigned char) c >= 0x80;   /* SMTPUTF8 local parts pass through */
}

static bool needs_quotes(const char *local) {
        if (!*local || *local == '.')
                return true;
        for (const char *p = local; *p; p++) {
                if (*p == '.') {
                        if (p[1] == '.' || p[1] == 0)
                                return true;
                        continue;
                }
                if (!is_atext(*p))
                        return true;
        }
        return false;
}

int address_join(const char *local, const char *domain, char **ret) {
        _cleanup_free_ char *q = NULL;
        const char *l = local;
        char *s;

        if (needs_quotes(local) && (*local || !isempty(domain))) {
                char *d = q = malloc(strlen(local) * 2 + 3);
                if (!q)
                        return -ENOMEM;
                *d++ = '"';
                for (const char *p = local; *p; p++) {
                        if (*p == '"' || *p == '\\')
                                *d++ = '\\';
                        *d++ = *p;
                }
                *d++ = '"';
                *d = 0;
                l = q;
        }
        if (isempty(domain))
                s = strdup(l);
        else if (asprintf(&s, "%s@%s", l, domain) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int address_split_extension(const char *local, const char *delimiters, char **ret_base, char **ret_ext) {
        _cleanup_free_ char *base = NULL, *ext = NULL;
        size_t n;

        /* As Postfix: a delimiter in the first position is part of the name ("+foo" has no
         * extension), and so are the special names owner-X and X-request with '-'. */
        n = isempty(delimiters) || !*local ? strlen(local) : 1 + strcspn(local + 1, delimiters);
        if (local[n] && delimiters && strchr(delimiters, '-') && local[n] == '-' &&
            (strncasecmp(local, "owner-", 6) == 0 || (strlen(local) > 8 &&
                                                       strcasecmp(local + strlen(local) - 8, "-request") == 0)))
                n = strlen(local);

        base = strndup(local, n);
        if (!base)
                return -ENOMEM;
        if (local[n]) {
                ext = strdup(local + n + 1);
                if (!ext)
                        return -ENOMEM;
        }
        *ret_base = TAKE_PTR(base);
        *ret_ext = TAKE_PTR(ext);
        return 0;
}

bool address_domain_is_literal(const char *domain) {
        char buf[INET6_ADDRSTRLEN + 8];
        unsigned char a[16];
        size_t n;

        if (!domain || domain[0] != '[')
                return false;
        n = strlen(domain);
        if (n < 3 || domain[n - 1] != ']' || n - 2 >= sizeof(buf))
                return false;
        memcpy(buf, domain + 1, n - 2);
        buf[n - 2] = 0;
        if (strncasecmp(buf, "ipv6:", 5) == 0)
                return inet_pton(AF_INET6, buf + 5, a) == 1;
        return inet_pton(AF_INET, buf, a) == 1;
}

int address_lower(const char *addr, char **ret) {
        char *s = strdup(addr);
        if (!s)
                return -ENOMEM;
        *ret = ascii_strlower(s);
        return 0;
}
