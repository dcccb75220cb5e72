/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/netlist.h"
#include "common/strv.h"

/* "/file/name" entries may name further files; this bounds the nesting (and stops a file that
 * names itself). */
#define NETLIST_FILE_DEPTH_MAX 8
#define NETLIST_FILE_MAX (16u * 1024u * 1024u)

typedef struct NetEntry {
        int family;           /* AF_INET or AF_INET6 */
        unsigned prefix;
        bool negate;          /* "!pattern": a match excludes the client */
        uint8_t addr[16];     /* network, host bits zero; IPv4 in the first 4 bytes */
} NetEntry;

struct NetList {
        NetEntry *entries;
        size_t n;
};

NetList *netlist_free(NetList *l) {
        if (!l)
                return NULL;
        free(l->entries);
        free(l);
        return NULL;
}

static bool is_v4_mapped(const uint8_t a[16]) {
        static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        return memcmp(a, prefix, sizeof prefix) == 0;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
        unsigned bytes = bits / 8, rest = bits % 8;

        if (memcmp(a, b, bytes) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t) (0xff << (8 - rest));
        return (a[bytes] & mask) == (b[bytes] & mask);
}

static bool host_bits_zero(const uint8_t *a, unsigned bits, unsigned total) {
        for (unsigned i = bits; i < total; i++)
                if (a[i / 8] & (0x80 >> (i % 8)))
                        return false;
        return true;
}

static int parse_prefix(const char *s, unsigned max, unsigned *ret) {
        unsigned v = 0;

        if (!*s)
                return -EINVAL;
        for (const char *p = s; *p; p++) {
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                v = v * 10 + (unsigned) (*p - '0');
                if (v > max)
                        return -EINVAL;
        }
        /* "08" is not a prefix length anyone means. */
        if (s[0] == '0' && s[1])
                return -EINVAL;
        *ret = v;
        return 0;
}

static int list_add(NetList *l, const NetEntry *e) {
        NetEntry *a = realloc(l->entries, sizeof(NetEntry) * (l->n + 1));
        if (!a)
                return -ENOMEM;
        l->entries = a;
        l->entries[l->n++] = *e;
        return 0;
}

static int parse_spec(NetList *l, const char *spec, unsigned depth, char **ret_error);

static int parse_file(NetList *l, const char *path, unsigned depth, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t n = 0;
        int r;

        if (depth >= NETLIST_FILE_DEPTH_MAX) {
                (void) error_set(ret_error, 0, "%s: files nested too deeply", path);
                return -ELOOP;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                (void) error_set(ret_error, 0, "%s: %s", path, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > NETLIST_FILE_MAX) {
                (void) error_set(ret_error, 0, "%s: not a regular file of sensible size", path);
                return -EINVAL;
        }
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = negative_errno();
                        (void) error_set(ret_error, 0, "%s: %s", path, strerror(-r));
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        if (strlen(buf) != n) {
                (void) error_set(ret_error, 0, "%s: NUL byte in file", path);
                return -EINVAL;
        }

        /* One or more entries per line; '#' starts a comment that runs to the end of the line. */
        unsigned line = 0;
        for (char *p = buf, *nl; p && *p; p = nl ? nl + 1 : NULL) {
                nl = strchr(p, '\n');
                if (nl)
                        *nl = 0;
                line++;
                char *hash = strchr(p, '#');
                if (hash)
                        *hash = 0;
                _cleanup_free_ char *err = NULL;
                r = parse_spec(l, p, depth + 1, &err);
                if (r < 0) {
                        (void) error_set(ret_error, 0, "%s:%u: %s", path, line, strempty(err));
                        return r;
                }
        }
        return 0;
}

/* "cidr:/path", "hash:/path": a word before the first ':' that cannot be the start of an IPv6 address. */
static bool looks_like_table(const char *item) {
        size_t n = strspn(item, "abcdefghijklmnopqrstuvwxyz");
        if (n == 0 || item[n] != ':')
                return false;
        return strspn(item, "abcdef") < n;
}

static int parse_entry(NetList *l, const char *item, unsigned depth, char **ret_error) {
        _cleanup_free_ char *copy = NULL;
        NetEntry e = {};
        char *a, *slash;
        unsigned max;
        int r;

        if (*item == '!') {
                e.negate = true;
                item++;
        }
        if (*item == '/')
                return e.negate ? ((void) error_set(ret_error, 0, "\"!%s\": a file cannot be negated", item), -EINVAL)
                                : parse_file(l, item, depth, ret_error);
        if (looks_like_table(item)) {
                (void) error_set(ret_error, 0, "\"%s\": lookup tables are not supported in address lists", item);
                return -EOPNOTSUPP;
        }

        copy = strdup(item);
        if (!copy)
                return -ENOMEM;
        a = copy;
        slash = NULL;
        if (*a == '[') {
                char *close = strchr(a, ']');
                if (!close || (close[1] && close[1] != '/')) {
                        (void) error_set(ret_error, 0, "\"%s\": malformed [address]", item);
                        return -EINVAL;
                }
                *close = 0;
                a++;
                slash = close[1] == '/' ? close + 1 : NULL;
        } else {
                slash = strchr(a, '/');
                if (slash)
                        *slash = 0;
        }
        if (slash)
                slash++;

        if (inet_pton(AF_INET, a, e.addr) == 1) {
                e.family = AF_INET;
                max = 32;
        } else if (inet_pton(AF_INET6, a, e.addr) == 1) {
                e.family = AF_INET6;
                max = 128;
        } else {
                (void) error_set(ret_error, 0, "\"%s\": not an IPv4 or IPv6 address or network", item);
                return -EINVAL;
        }
        if (slash) {
                r = parse_prefix(slash, max, &e.prefix);
                if (r < 0) {
                        (void) error_set(ret_error, 0, "\"%s\": bad prefix length (0-%u)", item, max);
                        return r;
                }
        } else
                e.prefix = max;
        if (!host_bits_zero(e.addr, e.prefix, max)) {
                (void) error_set(ret_error, 0, "\"%s\": address has bits set beyond the /%u prefix", item, e.prefix);
                return -EINVAL;
        }

        /* IPv4-mapped networks (Postfix's default [::ffff:127.0.0.0]/104) become IPv4 networks, and
         * mapped clients are matched as IPv4, so both spellings behave the same. */
        if (e.family == AF_INET6 && e.prefix >= 96 && is_v4_mapped(e.addr)) {
                memmove(e.addr, e.addr + 12, 4);
                memset(e.addr + 4, 0, 12);
                e.family = AF_INET;
                e.prefix -= 96;
        }
        return list_add(l, &e);
}

static int parse_spec(NetList *l, const char *spec, unsigned depth, char **ret_error) {
        _cleanup_strv_free_ char **items = NULL;
        int r;

        r = strv_split_list(spec, &items);
        if (r < 0)
                return r;
        for (char **i = items; *i; i++) {
                r = parse_entry(l, *i, depth, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int netlist_parse(const char *spec, NetList **ret, char **ret_error) {
        _cleanup_(netlist_freep) NetList *l = NULL;
        int r;

        if (!spec || !ret)
                return -EINVAL;
        l = calloc(1, sizeof(NetList));
        if (!l)
                return -ENOMEM;
        r = parse_spec(l, spec, 0, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

static bool match_addr(const NetList *l, int family, const uint8_t *addr) {
        /* The first entry that matches decides, so "!192.0.2.1 192.0.2.0/24" excludes one host. */
        for (size_t i = 0; i < l->n; i++) {
                const NetEntry *e = &l->entries[i];
                if (e->family == family && prefix_equal(e->addr, addr, e->prefix))
                        return !e->negate;
        }
        return false;
}

static bool match_v6(const NetList *l, const uint8_t a[16]) {
        if (is_v4_mapped(a))
                return match_addr(l, AF_INET, a + 12);
        return match_addr(l, AF_INET6, a);
}

bool netlist_match(const NetList *l, const struct sockaddr *sa) {
        if (!l || !sa)
                return false;
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                return match_addr(l, AF_INET, (const uint8_t *) &in->sin_addr);
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                return match_v6(l, in6->sin6_addr.s6_addr);
        }
        return false;
}

bool netlist_match_string(const NetList *l, const char *address) {
        uint8_t a[16];
        _cleanup_free_ char *copy = NULL;
        const char *s = address;

        if (!l || !address)
                return false;
        if (*s == '[') {
                size_t n = strlen(s);
                if (n < 2 || s[n - 1] != ']')
                        return false;
                copy = strndup(s + 1, n - 2);
                if (!copy)
                        return false;
                s = copy;
        }
        if (inet_pton(AF_INET, s, a) == 1)
                return match_addr(l, AF_INET, a);
        if (inet_pton(AF_INET6, s, a) == 1)
                return match_v6(l, a);
        return false;
}
