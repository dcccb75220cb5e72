/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/strv.h"
#include "tools/sendmail/addrlist.h"

/* One mailbox being collected: the words outside angle brackets (a bare addr-spec, or a display
 * name that an angle address later replaces) and the last angle address. */
typedef struct Mailbox {
        char *plain;
        size_t plain_len;
        char *angle;
        size_t angle_len;
        bool angle_seen;
        bool in_angle;
        bool space;         /* white space seen since the last word character */
} Mailbox;

static void mailbox_put(Mailbox *mb, char c) {
        if (mb->in_angle) {
                mb->angle[mb->angle_len++] = c;
                return;
        }
        /* Old mail programs separate addresses with white space alone ("a@x b@y"); keep a
         * marker between two words so that mailbox_finish() can split them, but not around
         * '.' and '@', where RFC 5322 allows white space inside one address. */
        if (mb->space && mb->plain_len > 0 && !strchr(".@", mb->plain[mb->plain_len - 1]) &&
            !strchr(".@", c))
                mb->plain[mb->plain_len++] = ' ';
        mb->space = false;
        mb->plain[mb->plain_len++] = c;
}

static void mailbox_reset(Mailbox *mb) {
        mb->plain_len = mb->angle_len = 0;
        mb->angle_seen = mb->in_angle = mb->space = false;
}

/* Ends the mailbox: the angle address wins over the words; a source route is dropped. */
static int mailbox_finish(Mailbox *mb, char ***list) {
        char *a = mb->angle_seen ? mb->angle : mb->plain;
        size_t n = mb->angle_seen ? mb->angle_len : mb->plain_len;
        int r = 0;

        a[n] = '\0';
        if (mb->angle_seen) {
                if (a[0] == '@') {
                        char *colon = strchr(a, ':');
                        a = colon ? colon + 1 : a + n;
                }
                if (*a)
                        r = strv_extend(list, a);
                mailbox_reset(mb);
                return r;
        }

        /* Words: split at the markers outside quotes. */
        bool quoted = false;
        char *start = a;
        for (char *p = a;; p++) {
                if (*p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        quoted = !quoted;
                else if ((*p == ' ' && !quoted) || !*p) {
                        bool end = !*p;
                        *p = '\0';
                        if (*start && r >= 0)
                                r = strv_extend(list, start);
                        if (end)
                                break;
                        start = p + 1;
                }
        }
        mailbox_reset(mb);
        return r;
}

int addrlist_parse(const char *text, char ***list) {
        size_t len = strlen(text);
        _cleanup_free_ char *plain = malloc(len + 1), *angle = malloc(len + 1);
        Mailbox mb = {};
        int r;

        if (!plain || !angle)
                return -ENOMEM;
        mb.plain = plain;
        mb.angle = angle;

        for (const char *p = text; *p; p++) {
                switch (*p) {
                case ' ':
                case '\t':
                case '\r':
                case '\n':
                        mb.space = true;
                        break;
                case '(': {
                        mb.space = true;
                        /* Comments nest and may hold quoted pairs; they are dropped. */
                        unsigned depth = 1;
                        for (p++; *p && depth > 0; p++) {
                                if (*p == '\\' && p[1])
                                        p++;
                                else if (*p == '(')
                                        depth++;
                                else if (*p == ')')
                                        depth--;
                        }
                        p--;
                        break;
                }
                case '"':
                        mailbox_put(&mb, *p);
                        for (p++; *p && *p != '"'; p++) {
                                if (*p == '\\' && p[1])
                                        mailbox_put(&mb, *p++);
                                mailbox_put(&mb, *p);
                        }
                        /* An unclosed quote stays unclosed: addrlist_address_valid() refuses it. */
                        if (*p)
                                mailbox_put(&mb, '"');
                        else
                                p--;
                        break;
                case '[':
                        for (; *p && *p != ']'; p++)
                                if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
                                        mailbox_put(&mb, *p);
                        if (*p)
                                mailbox_put(&mb, ']');
                        else
                                p--;
                        break;
                case '\\':
                        mailbox_put(&mb, *p);
                        if (p[1])
                                mailbox_put(&mb, *++p);
                        break;
                case '<':
                        if (!mb.in_angle) {
                                mb.in_angle = mb.angle_seen = true;
                                mb.angle_len = 0;
                        }
                        break;
                case '>':
                        mb.in_angle = false;
                        break;
                case ':':
                        if (mb.in_angle)
                                mailbox_put(&mb, *p);
                        else
                                /* A group: what came before was its display name. */
                                mailbox_reset(&mb);
                        break;
                case ',':
                case ';':
                        if (mb.in_angle && *p == ',') {
                                mailbox_put(&mb, *p);   /* inside a source route "@a,@b:" */
                                break;
                        }
                        r = mailbox_finish(&mb, list);
                        if (r < 0)
                                return r;
                        break;
                default:
                        mailbox_put(&mb, *p);
                }
        }
        return mailbox_finish(&mb, list);
}

bool addrlist_address_valid(const char *addr) {
        size_t n = strlen(addr);
        bool quoted = false;

        if (n == 0 || n > 254)
                return false;
        for (const char *p = addr; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c < 32 || c == 127)
                        return false;
                if (quoted) {
                        if (c == '\\' && p[1])
                                p++;
                        else if (c == '"')
                                quoted = false;
                        continue;
                }
                if (c == '"')
                        quoted = true;
                else if (strchr(" <>(),;\\", c))
                        return false;
        }
        return !quoted;
}

bool addrlist_address_qualified(const char *addr) {
        bool quoted = false;

        for (const char *p = addr; *p; p++) {
                if (*p == '\\' && quoted && p[1])
                        p++;
                else if (*p == '"')
                        quoted = !quoted;
                else if (*p == '@' && !quoted)
                        return true;
        }
        return false;
}

int addrlist_qualify(const char *addr, const char *domain, char **ret) {
        char *s;

        if (addrlist_address_qualified(addr) || isempty(domain))
                s = strdup(addr);
        else if (asprintf(&s, "%s@%s", addr, domain) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}
