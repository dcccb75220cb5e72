/* SPDX-License-Identifier: MIT */
#include <arpa/nameser.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/address.h"
#include "common/macro.h"
#include "services/queue/route.h"

#define MX_MAX 32
#define TARGETS_MAX 64

typedef struct Mx {
        unsigned pref;
        unsigned order;
        char name[NS_MAXDNAME];
} Mx;

int route_parse_relayhost(const char *s, char **ret_host, bool *ret_mx, unsigned *ret_port) {
        const char *host, *end, *port = NULL;
        bool mx = true;

        if (isempty(s))
                return -EINVAL;
        if (s[0] == '[') {
                host = s + 1;
                end = strchr(host, ']');
                if (!end)
                        return -EINVAL;
                mx = false;
                if (end[1] == ':')
                        port = end + 2;
                else if (end[1] != 0)
                        return -EINVAL;
                if (strncasecmp(host, "ipv6:", 5) == 0)
                        host += 5;
        } else {
                host = s;
                end = strchr(s, ':');
                if (end)
                        port = end + 1;
                else
                        end = s + strlen(s);
        }
        if (end == host)
                return -EINVAL;

        unsigned p = 25;
        if (port) {
                char *e;
                unsigned long v;
                errno = 0;
                v = strtoul(port, &e, 10);
                if (errno != 0 || e == port || *e != 0 || v == 0 || v > 65535)
                        return -EINVAL;
                p = (unsigned) v;
        }
        char *h = strndup(host, (size_t) (end - host));
        if (!h)
                return -ENOMEM;
        *ret_host = h;
        *ret_mx = mx;
        *ret_port = p;
        return 0;
}

void route_targets_free(SmtpTarget *t, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(t[i].host);
        free(t);
}

static void error_set(RouteError *e, MailStatus status, const char *dsn, const char *fmt, ...) _printf_(4, 5);
static void error_set(RouteError *e, MailStatus status, const char *dsn, const char *fmt, ...) {
        va_list ap;
        e->status = status;
        snprintf(e->dsn, sizeof e->dsn, "%s", dsn);
        va_start(ap, fmt);
        vsnprintf(e->text, sizeof e->text, fmt, ap);
        va_end(ap);
}

/* Appends the addresses of name; returns 0, or the EAI_ code when none. */
static int add_addresses(const char *name, unsigned port, bool numeric, SmtpTarget *t, size_t *n) {
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = numeric ? AI_NUMERICHOST : AI_ADDRCONFIG,
        };
        struct addrinfo *res = NULL;
        char service[8];

        snprintf(service, sizeof service, "%u", port);
        int r = getaddrinfo(name, service, &hints, &res);
        if (r == EAI_ADDRFAMILY || r == EAI_NODATA)
                r = EAI_NONAME;
        if (r != 0 && !numeric) {
                /* AI_ADDRCONFIG hides loopback-only setups' addresses on some systems: ask again. */
                hints.ai_flags = 0;
                r = getaddrinfo(name, service, &hints, &res);
        }
        if (r != 0)
                return r;
        for (struct addrinfo *ai = res; ai && *n < TARGETS_MAX; ai = ai->ai_next) {
                if (ai->ai_addrlen > sizeof(struct sockaddr_storage))
                        continue;
                /* Skip duplicates (one MX name may be listed twice). */
                bool dup = false;
                for (size_t i = 0; i < *n; i++)
                        if (t[i].addr_len == ai->ai_addrlen && memcmp(&t[i].addr, ai->ai_addr, ai->ai_addrlen) == 0)
                                dup = true;
                if (dup)
                        continue;
                char *h = strdup(name);
                if (!h) {
                        freeaddrinfo(res);
                        return EAI_MEMORY;
                }
                t[*n] = (SmtpTarget) { .host = h, .addr_len = ai->ai_addrlen };
                memcpy(&t[*n].addr, ai->ai_addr, ai->ai_addrlen);
                (*n)++;
        }
        freeaddrinfo(res);
        return 0;
}

/* Whether addr is configured on one of this host's interfaces (loopback included). */
static bool is_local_address(const struct sockaddr_storage *addr) {
        struct ifaddrs *ifs = NULL;
        bool found = false;

        if (getifaddrs(&ifs) < 0)
                return false;
        for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != addr->ss_family)
                        continue;
                if (addr->ss_family == AF_INET)
                        found = memcmp(&((const struct sockaddr_in *) i->ifa_addr)->sin_addr,
                                       &((const struct sockaddr_in *) addr)->sin_addr, sizeof(struct in_addr)) == 0;
                else if (addr->ss_family == AF_INET6)
                        found = memcmp(&((const struct sockaddr_in6 *) i->ifa_addr)->sin6_addr,
                                       &((const struct sockaddr_in6 *) addr)->sin6_addr,
                                       sizeof(struct in6_addr)) == 0;
        }
        freeifaddrs(ifs);
        return found;
}

static int cmp_mx(const void *a, const void *b) {
        const Mx *x = a, *y = b;
        if (x->pref != y->pref)
                return x->pref < y->pref ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

/* 0 and the MX list (possibly empty: no MX records); -ENXIO: the domain does not exist; -EAGAIN:
 * temporary failure. */
static int lookup_mx(const char *domain, Mx *mx, size_t *ret_n) {
        unsigned char answer[NS_MAXMSG];
        ns_msg msg;
        size_t n = 0;
        int len;

        len = res_query(domain, ns_c_in, ns_t_mx, answer, sizeof answer);
        if (len < 0) {
                if (h_errno == HOST_NOT_FOUND)
                        return -ENXIO;
                if (h_errno == NO_DATA) {
                        *ret_n = 0;
                        return 0;
                }
                return -EAGAIN;
        }
        if (ns_initparse(answer, len, &msg) < 0)
                return -EAGAIN;
        int count = ns_msg_count(msg, ns_s_an);
        for (int i = 0; i < count && n < MX_MAX; i++) {
                ns_rr rr;
                if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
                        return -EAGAIN;
                if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in || ns_rr_rdlen(rr) < 3)
                        continue;
                const unsigned char *rd = ns_rr_rdata(rr);
                mx[n].pref = ns_get16(rd);
                mx[n].order = (unsigned) n;
                if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 2, mx[n].name, sizeof mx[n].name) < 0)
                        continue;
                n++;
        }
        qsort(mx, n, sizeof *mx, cmp_mx);
        *ret_n = n;
        return 0;
}

int route_resolve(const char *host, bool mx, unsigned port, const char *myhostname, bool nxdomain_permanent,
                  SmtpTarget **ret, size_t *ret_n, RouteError *ret_error) {
        SmtpTarget *t = calloc(TARGETS_MAX, sizeof *t);
        size_t n = 0;
        int r;

        if (!t)
                return -ENOMEM;
        error_set(ret_error, MAIL_TEMPFAIL, "4.4.3", "no address found for %s%s", host, "");

        if (address_domain_is_literal(host) || host[0] == '[') {
                _cleanup_free_ char *lit = strndup(host + 1, strlen(host) > 2 ? strlen(host) - 2 : 0);
                if (!lit) {
                        free(t);
                        return -ENOMEM;
                }
                const char *a = strncasecmp(lit, "ipv6:", 5) == 0 ? lit + 5 : lit;
                if (add_addresses(a, port, true, t, &n) != 0)
                        error_set(ret_error, MAIL_PERMFAIL, "5.1.2", "bad address literal %s%s", host, "");
                goto done;
        }

        if (mx) {
                Mx list[MX_MAX];
                size_t n_mx = 0;
                r = lookup_mx(host, list, &n_mx);
                if (r == -ENXIO) {
                        error_set(ret_error, nxdomain_permanent ? MAIL_PERMFAIL : MAIL_TEMPFAIL,
                                  nxdomain_permanent ? "5.1.2" : "4.1.2",
                                  "Host or domain name not found. Name service error for name=%s type=MX: %s",
                                  host, "Host not found");
                        goto done;
                }
                if (r < 0) {
                        error_set(ret_error, MAIL_TEMPFAIL, "4.4.3",
                                  "Host or domain name not found. Name service error for name=%s type=MX: %s",
                                  host, "Host not found, try again");
                        goto done;
                }
                if (n_mx == 1 && list[0].pref == 0 && (list[0].name[0] == 0 || streq(list[0].name, "."))) {
                        error_set(ret_error, MAIL_PERMFAIL, "5.1.10", "Domain %s does not accept mail (nullMX)%s",
                                  host, "");
                        goto done;
                }
                if (n_mx > 0) {
                        bool tried = false;
                        for (size_t i = 0; i < n_mx; i++) {
                                if (myhostname && strcaseeq(list[i].name, myhostname)) {
                                        if (i == 0 || n == 0)
                                                error_set(ret_error, MAIL_PERMFAIL, "5.4.6",
                                                          "mail for %s loops back to myself%s", host, "");
                                        break;
                                }
                                tried = true;
                                size_t before = n;
                                (void) add_addresses(list[i].name, port, false, t, &n);
                                /* An MX host with one of our own addresses is us under another name:
                                 * this and every less preferred host would send the mail back. */
                                bool ours = false;
                                for (size_t j = before; j < n; j++)
                                        if (is_local_address(&t[j].addr))
                                                ours = true;
                                if (ours) {
                                        for (size_t j = before; j < n; j++)
                                                free(t[j].host);
                                        n = before;
                                        if (n == 0) {
                                                error_set(ret_error, MAIL_PERMFAIL, "5.4.6",
                                                          "mail for %s loops back to myself", host);
                                                tried = false;
                                        }
                                        break;
                                }
                        }
                        if (n == 0 && tried)
                                error_set(ret_error, MAIL_TEMPFAIL, "4.4.3",
                                          "Host or domain name not found. Name service error for the MX hosts "
                                          "of %s%s", host, "");
                        goto done;
                }
        }

        r = add_addresses(host, port, false, t, &n);
        if (r == EAI_NONAME && nxdomain_permanent)
                error_set(ret_error, MAIL_PERMFAIL, "5.1.2",
                          "Host or domain name not found. Name service error for name=%s type=A: %s", host,
                          "Host not found");
        else if (r != 0)
                error_set(ret_error, MAIL_TEMPFAIL, "4.4.3",
                          "Host or domain name not found. Name service error for name=%s type=A: %s", host,
                          gai_strerror(r));
done:
        if (n == 0) {
                free(t);
                t = NULL;
        }
        *ret = t;
        *ret_n = n;
        return 0;
}
