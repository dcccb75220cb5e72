/* SPDX-License-Identifier: MIT */
/*
 * The resolver: domain classes, the receiver's recipient check and recipient expansion through
 * virtual_alias_maps, alias_maps, :include: files and .forward text.
 *
 * As in Postfix, virtual_alias_maps rewrites every recipient, whatever its domain; a domain listed
 * in virtual_alias_domains additionally has no mailboxes of its own, so an address there that the
 * maps do not know is unknown. Local addresses then go through alias_maps and end in a mailbox,
 * a file, a command or another address.
 *
 * Loops: every expansion carries the chain of addresses that led to it. An address met again on
 * its own chain is delivered as itself (what "user: user, copy" means), and a chain deeper than
 * RESOLVE_DEPTH_MAX fails the recipient. Map and file read errors fail it temporarily.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/address.h"
#include "common/alias.h"
#include "common/map-backend.h"
#include "common/map.h"
#include "common/resolve.h"
#include "common/strv.h"

#define RESOLVE_DEPTH_MAX 20
#define RESOLVE_EXPANSION_MAX 1000

typedef enum Origin {
        ORIGIN_ALIAS,
        ORIGIN_FORWARD,
        ORIGIN_INCLUDE,
        ORIGIN_VIRTUAL,
} Origin;

/* A list of domain patterns from main.cf: names (".name" also matches subdomains), type:path maps
 * that have the domain as a key, and /file lists of names. */
typedef struct DomainList {
        const char *param;
        char **names;
        char **maps_spec;   /* references, joined lazily into maps */
        MapList *maps;
        bool loaded;        /* names and map references are parsed */
} DomainList;

struct Resolver {
        const Config *config;
        char *myorigin;
        char *delimiters;
        char *default_privs;
        bool local_recipient_check;
        bool cmd_alias, cmd_forward, cmd_include;
        bool file_alias, file_forward, file_include;
        bool propagate_alias, propagate_virtual;

        DomainList mydestination;
        DomainList virtual_domains;
        MapList *alias_maps;
        MapList *virtual_maps;
};

typedef struct Chain {
        const struct Chain *up;
        const char *key;      /* lower case: "user" for a local name, "user@domain" otherwise */
        unsigned depth;
} Chain;

static bool chain_has(const Chain *c, const char *key) {
        for (; c; c = c->up)
                if (c->key && streq(c->key, key))
                        return true;
        return false;
}

static void domain_list_done(DomainList *d) {
        d->names = strv_free(d->names);
        d->maps_spec = strv_free(d->maps_spec);
        d->maps = maplist_free(d->maps);
        d->loaded = false;
}

Resolver *resolver_free(Resolver *r) {
        if (!r)
                return NULL;
        free(r->myorigin);
        free(r->delimiters);
        free(r->default_privs);
        domain_list_done(&r->mydestination);
        domain_list_done(&r->virtual_domains);
        maplist_free(r->alias_maps);
        maplist_free(r->virtual_maps);
        free(r);
        return NULL;
}

static int get_list(const Config *c, const char *name, char ***ret) {
        return strv_split_list(strempty(config_get(c, name)), ret);
}

int resolver_new(const Config *c, Resolver **ret) {
        _cleanup_(resolver_freep) Resolver *r = NULL;
        _cleanup_strv_free_ char **cmds = NULL, **files = NULL, **prop = NULL;
        int k;

        r = calloc(1, sizeof(Resolver));
        if (!r)
                return -ENOMEM;
        r->config = c;
        r->mydestination.param = "mydestination";
        r->virtual_domains.param = "virtual_alias_domains";

        r->myorigin = strdup(strempty(config_get(c, "myorigin")));
        r->delimiters = strdup(strempty(config_get(c, "recipient_delimiter")));
        r->default_privs = strdup(strempty(config_get(c, "default_privs")));
        if (!r->myorigin || !r->delimiters || !r->default_privs)
                return -ENOMEM;
        ascii_strlower(r->myorigin);

        /* An empty local_recipient_maps means "accept every local name at SMTP time", as Postfix. */
        r->local_recipient_check = !isempty(config_get(c, "local_recipient_maps"));

        if ((k = get_list(c, "allow_mail_to_commands", &cmds)) < 0 ||
            (k = get_list(c, "allow_mail_to_files", &files)) < 0 ||
            (k = get_list(c, "propagate_unmatched_extensions", &prop)) < 0)
                return k;
        r->cmd_alias = strv_contains_case(cmds, "alias");
        r->cmd_forward = strv_contains_case(cmds, "forward");
        r->cmd_include = strv_contains_case(cmds, "include");
        r->file_alias = strv_contains_case(files, "alias");
        r->file_forward = strv_contains_case(files, "forward");
        r->file_include = strv_contains_case(files, "include");
        r->propagate_alias = strv_contains_case(prop, "alias");
        r->propagate_virtual = strv_contains_case(prop, "virtual");

        *ret = TAKE_PTR(r);
        return 0;
}

static int domain_list_load(Resolver *r, DomainList *d) {
        _cleanup_strv_free_ char **items = NULL, **names = NULL, **maps = NULL;
        int k;

        if (d->loaded)
                return 0;
        k = get_list(r->config, d->param, &items);
        if (k < 0)
                return k;
        names = calloc(1, sizeof(char *));
        maps = calloc(1, sizeof(char *));
        if (!names || !maps)
                return -ENOMEM;

        for (char **i = items; *i; i++) {
                if (**i == '/') {
                        /* A file of names, one or more a line. */
                        _cleanup_strv_free_ char **more = NULL;
                        _cleanup_free_ char *buf = NULL;
                        size_t len;

                        k = read_source_file(*i, &buf, &len, NULL);
                        if (k < 0)
                                return k;
                        for (char *p = buf; p && *p;) {
                                char *nl = strchr(p, '\n');
                                if (nl)
                                        *nl = 0;
                                if (*p != '#') {
                                        k = strv_split_list(p, &more);
                                        if (k < 0)
                                                return k;
                                        for (char **m = more; *m; m++) {
                                                k = strv_extend(&names, ascii_strlower(*m));
                                                if (k < 0)
                                                        return k;
                                        }
                                        more = strv_free(more);
                                }
                                p = nl ? nl + 1 : NULL;
                        }
                } else if (**i != '[' && strchr(*i, ':'))
                        k = strv_extend(&maps, *i);
                else
                        k = strv_extend(&names, ascii_strlower(*i));
                if (k < 0)
                        return k;
        }
        d->names = TAKE_PTR(names);
        d->maps_spec = TAKE_PTR(maps);
        d->loaded = true;
        return 0;
}

/* 1 when the domain is in the list, 0 when not, negative on a map or file error. */
static int domain_list_match(Resolver *r, DomainList *d, const char *domain) {
        int k;

        k = domain_list_load(r, d);
        if (k < 0)
                return k;
        for (char **n = d->names; *n; n++) {
                size_t nl = strlen(*n), dl = strlen(domain);
                if (streq(*n, domain))
                        return 1;
                if (**n == '.' && dl > nl && streq(domain + dl - nl, *n))
                        return 1;
        }
        if (!d->maps && d->maps_spec[0]) {
                _cleanup_free_ char *spec = NULL;
                size_t len = 1;

                for (char **m = d->maps_spec; *m; m++)
                        len += strlen(*m) + 1;
                spec = calloc(1, len);
                if (!spec)
                        return -ENOMEM;
                for (char **m = d->maps_spec; *m; m++) {
                        strcat(spec, *m);
                        strcat(spec, " ");
                }
                k = maplist_open(spec, &d->maps);
                if (k < 0)
                        return k;
        }
        if (d->maps && *domain) {
                k = maplist_lookup(d->maps, domain, NULL);
                if (k != 0)
                        return k;
        }
        return 0;
}

/* An IP literal names us when its address is on one of our interfaces. */
static bool literal_is_ours(const char *domain) {
        struct ifaddrs *ifa = NULL;
        unsigned char want[16];
        char buf[INET6_ADDRSTRLEN + 8];
        int family;
        bool found = false;
        size_t n = strlen(domain);

        if (!address_domain_is_literal(domain) || n - 2 >= sizeof(buf))
                return false;
        memcpy(buf, domain + 1, n - 2);
        buf[n - 2] = 0;
        if (strncasecmp(buf, "ipv6:", 5) == 0) {
                family = AF_INET6;
                if (inet_pton(AF_INET6, buf + 5, want) != 1)
                        return false;
        } else {
                family = AF_INET;
                if (inet_pton(AF_INET, buf, want) != 1)
                        return false;
        }
        if (getifaddrs(&ifa) < 0)
                return false;
        for (struct ifaddrs *i = ifa; i && !found; i = i->ifa_next) {
                if (!i->ifa_addr || i->ifa_addr->sa_family != family)
                        continue;
                if (family == AF_INET)
                        found = memcmp(&((struct sockaddr_in *) i->ifa_addr)->sin_addr, want, 4) == 0;
                else
                        found = memcmp(&((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr, want, 16) == 0;
        }
        freeifaddrs(ifa);
        return found;
}

int resolver_classify_domain(Resolver *r, const char *domain, DomainClass *ret) {
        int k;

        if (isempty(domain)) {
                *ret = DOMAIN_LOCAL;
                return 0;
        }
        if (address_domain_is_literal(domain)) {
                *ret = literal_is_ours(domain) ? DOMAIN_LOCAL : DOMAIN_REMOTE;
                return 0;
        }
        k = domain_list_match(r, &r->mydestination, domain);
        if (k < 0)
                return k;
        if (k > 0) {
                *ret = DOMAIN_LOCAL;
                return 0;
        }
        k = domain_list_match(r, &r->virtual_domains, domain);
        if (k < 0)
                return k;
        *ret = k > 0 ? DOMAIN_VIRTUAL_ALIAS : DOMAIN_REMOTE;
        return 0;
}

static bool has_domain(const char *addr) {
        bool quoted = false;
        for (const char *p = addr; *p; p++) {
                if (*p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        quoted = !quoted;
                else if (*p == '@' && !quoted)
                        return true;
        }
        return false;
}

int resolver_qualify(Resolver *r, const char *addr, char **ret) {
        char *s;

        if (!*addr || has_domain(addr) || isempty(r->myorigin))
                s = strdup(addr);
        else if (asprintf(&s, "%s@%s", addr, r->myorigin) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int open_lazily(Resolver *r, MapList **l, const char *param) {
        if (*l)
                return 0;
        return maplist_open(config_get(r->config, param), l);
}

/* Looks an address up in virtual_alias_maps: user+ext@domain, user@domain, @domain. Returns 1 with the
 * value and whether the extension was matched, 0 when absent, negative on error. */
static int virtual_lookup(Resolver *r, const char *local, const char *domain, char **ret_value,
                          bool *ret_ext_matched, bool *ret_catchall) {
        _cleanup_free_ char *base = NULL, *ext = NULL, *key = NULL, *ukey = NULL;
        char *v = NULL;
        int k;

        k = open_lazily(r, &r->virtual_maps, "virtual_alias_maps");
        if (k < 0)
                return k;
        if (maplist_size(r->virtual_maps) == 0 || isempty(domain))
                return 0;

        k = address_split_extension(local, r->delimiters, &base, &ext);
        if (k < 0)
                return k;
        if (asprintf(&key, "%s@%s", local, domain) < 0)
                return -ENOMEM;
        k = maplist_lookup(r->virtual_maps, key, &v);
        if (k != 0)
                goto done;
        if (ext) {
                if (asprintf(&ukey, "%s@%s", base, domain) < 0)
                        return -ENOMEM;
                k = maplist_lookup(r->virtual_maps, ukey, &v);
                if (k != 0)
                        goto done;
        }
        free(key);
        if (asprintf(&key, "@%s", domain) < 0)
                return -ENOMEM;
        k = maplist_lookup(r->virtual_maps, key, &v);
        if (k > 0) {
                *ret_value = v;
                *ret_ext_matched = false;
                *ret_catchall = true;
        }
        return k;
done:
        if (k > 0) {
                *ret_value = v;
                *ret_ext_matched = !ukey;
                *ret_catchall = false;
        }
        return k;
}

/* Alias lookup: user+ext, then user. Returns 1 with the value and the map that had it. */
static int alias_lookup(Resolver *r, const char *local, const char *base, char **ret_value, Map **ret_map,
                        bool *ret_ext_matched) {
        const char *keys[2] = { local, base };
        int k;

        k = open_lazily(r, &r->alias_maps, "alias_maps");
        if (k < 0)
                return k;
        for (size_t i = 0; i < 2; i++) {
                if (i == 1 && streq(local, base))
                        break;
                for (size_t j = 0; j < maplist_size(r->alias_maps); j++) {
                        Map *m = maplist_get(r->alias_maps, j);
                        k = map_lookup(m, keys[i], ret_value);
                        if (k < 0)
                                return k;
                        if (k > 0) {
                                *ret_map = m;
                                *ret_ext_matched = i == 0;
                                return 1;
                        }
                }
        }
        return 0;
}

/* 1 and the account name (as the system spells it) when the user exists, 0 when not. */
static int lookup_account(const char *name, char **ret_name) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        int e;

        e = getpwnam_r(name, &pw, buf, sizeof(buf), &result);
        if (e == ERANGE)
                return -ERANGE;
        if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
                return -e;
        if (!result)
                return 0;
        if (ret_name) {
                char *s = strdup(pw.pw_name);
                if (!s)
                        return -ENOMEM;
                *ret_name = s;
        }
        return 1;
}

/* Whose rights a command or file from this map or file runs with: its owner, or default_privs when
 * root owns it (nobody should run alias commands as root). */
static int owner_of(Resolver *r, const char *path, char **ret) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        struct stat st;
        char *s;

        if (stat(path, &st) < 0)
                return negative_errno();
        if (st.st_uid == 0)
                s = strdup(r->default_privs);
        else {
                int e = getpwuid_r(st.st_uid, &pw, buf, sizeof(buf), &result);
                if (e != 0 || !result)
                        return e > 0 ? -e : -ENOENT;
                s = strdup(pw.pw_name);
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int add_delivery(DeliveryList *l, DeliveryKind kind, const char *address, const char *user,
                        const char *extension, const char *target) {
        Delivery *n, d = { .kind = kind, .status = MAIL_OK };

        /* The same destination reached twice (two aliases naming one user) is delivered once. */
        for (size_t i = 0; i < l->n; i++) {
                Delivery *o = &l->items[i];
                if (o->kind != kind || o->kind == DELIVERY_FAILED)
                        continue;
                if (kind == DELIVERY_MAILBOX && streq(o->user, user) && streq(strempty(o->extension), strempty(extension)))
                        return 0;
                if (kind == DELIVERY_REMOTE && strcaseeq(o->address, address))
                        return 0;
                if ((kind == DELIVERY_FILE || kind == DELIVERY_COMMAND) && streq(o->target, target) &&
                    streq(o->user, user))
                        return 0;
        }
        if (l->n >= RESOLVE_EXPANSION_MAX)
                return -E2BIG;

        if ((address && !(d.address = strdup(address))) || (user && !(d.user = strdup(user))) ||
            (extension && !(d.extension = strdup(extension))) || (target && !(d.target = strdup(target))))
                goto oom;
        n = realloc(l->items, sizeof(Delivery) * (l->n + 1));
        if (!n)
                goto oom;
        l->items = n;
        l->items[l->n++] = d;
        return 0;
oom:
        free(d.address), free(d.user), free(d.extension), free(d.target);
        return -ENOMEM;
}

_printf_(5, 6) static int add_failure(DeliveryList *l, const char *address, MailStatus status, const char *dsn,
                                      const char *format, ...) {
        Delivery *n, d = { .kind = DELIVERY_FAILED, .status = status };
        va_list ap;
        int k;

        for (size_t i = 0; i < l->n; i++)
                if (l->items[i].kind == DELIVERY_FAILED && streq(l->items[i].address, address))
                        return 0;

        va_start(ap, format);
        k = vasprintf(&d.reason, format, ap);
        va_end(ap);
        if (k < 0) {
                d.reason = NULL;
                return -ENOMEM;
        }
        d.address = strdup(address);
        d.dsn = strdup(dsn);
        n = d.address && d.dsn ? realloc(l->items, sizeof(Delivery) * (l->n + 1)) : NULL;
        if (!n) {
                free(d.address), free(d.dsn), free(d.reason);
                return -ENOMEM;
        }
        l->items = n;
        l->items[l->n++] = d;
        return 0;
}

static int tempfail(DeliveryList *l, const char *address, int error, const char *what) {
        return add_failure(l, address, MAIL_TEMPFAIL, "4.3.0", "%s: %s", what, strerror(-error));
}

void delivery_list_done(DeliveryList *l) {
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++) {
                Delivery *d = &l->items[i];
                free(d->address);
                free(d->user);
                free(d->extension);
                free(d->target);
                free(d->dsn);
                free(d->reason);
        }
        free(l->items);
        l->items = NULL;
        l->n = 0;
}

/* "bob" + '+' + "ext" -> "bob+ext"; with a domain, the extension goes into the local part. */
static int add_extension(const char *addr, char delim, const char *ext, char **ret) {
        _cleanup_free_ char *local = NULL, *domain = NULL, *withext = NULL;
        int k;

        k = address_split(addr, &local, &domain);
        if (k < 0)
                return k;
        if (asprintf(&withext, "%s%c%s", local, delim, ext) < 0)
                return -ENOMEM;
        return address_join(withext, domain, ret);
}

static int expand(Resolver *r, const char *addr, const Chain *up, DeliveryList *l);

static int expand_targets(Resolver *r, const char *address, const char *value, Origin origin,
                          const char *runas, const char *domain, char delim, const char *ext,
                          const Chain *chain, DeliveryList *l);

/* Reads an :include: file and expands its targets, commands and files running as its owner. */
static int expand_include(Resolver *r, const char *address, const char *path, const char *domain,
                          const Chain *up, DeliveryList *l) {
        _cleanup_free_ char *buf = NULL, *runas = NULL, *key = NULL;
        size_t len;
        int k;

        if (asprintf(&key, ":include:%s", path) < 0)
                return -ENOMEM;
        if (chain_has(up, key))
                return 0;   /* a file that includes itself adds nothing new */
        Chain chain = { .up = up, .key = key, .depth = up ? up->depth + 1 : 1 };
        if (chain.depth > RESOLVE_DEPTH_MAX)
                return add_failure(l, address, MAIL_PERMFAIL, "5.4.6", "alias expansion nested too deeply");

        k = read_source_file(path, &buf, &len, NULL);
        if (k == 0)
                k = owner_of(r, path, &runas);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return add_failure(l, address, MAIL_TEMPFAIL, "4.3.0", "cannot read include file %s: %s", path,
                                   strerror(-k));
        if (memchr(buf, 0, len))
                return add_failure(l, address, MAIL_PERMFAIL, "5.3.0", "include file %s has a NUL byte", path);

        for (char *p = buf; p && *p;) {
                char *nl = strchr(p, '\n'), *line;
                if (nl)
                        *nl = 0;
                line = strstrip(p);
                if (*line && *line != '#') {
                        k = expand_targets(r, address, line, ORIGIN_INCLUDE, runas, domain, 0, NULL, &chain, l);
                        if (k < 0)
                                return k;
                }
                p = nl ? nl + 1 : NULL;
        }
        return 0;
}

/* A local name, after the virtual step: alias expansion, then a mailbox. no_alias is "\user". */
static int expand_local(Resolver *r, const char *address, const char *local, const char *domain, bool no_alias,
                        const Chain *up, DeliveryList *l) {
        _cleanup_free_ char *base = NULL, *ext = NULL, *lower = NULL, *lbase = NULL, *value = NULL,
                *runas = NULL, *account = NULL;
        Map *map = NULL;
        bool ext_matched = false;
        int k;

        k = address_lower(local, &lower);
        if (k < 0)
                return k;
        k = address_split_extension(lower, r->delimiters, &lbase, &ext);
        if (k < 0)
                return k;
        free(ext);
        ext = NULL;
        k = address_split_extension(local, r->delimiters, &base, &ext);
        if (k < 0)
                return k;

        if (!no_alias && !chain_has(up, lower) && !chain_has(up, lbase)) {
                k = alias_lookup(r, lower, lbase, &value, &map, &ext_matched);
                if (k < 0)
                        return tempfail(l, address, k, "alias map lookup failed");
                if (k > 0) {
                        Chain chain = { .up = up, .key = ext_matched ? lower : lbase,
                                        .depth = up ? up->depth + 1 : 1 };
                        bool propagate = ext && !ext_matched && r->propagate_alias;

                        if (chain.depth > RESOLVE_DEPTH_MAX)
                                return add_failure(l, address, MAIL_PERMFAIL, "5.4.6",
                                                   "alias expansion nested too deeply");
                        k = owner_of(r, map_db_path(map), &runas);
                        if (k == -ENOMEM)
                                return k;
                        if (k < 0)
                                return tempfail(l, address, k, "cannot find the owner of the alias map");
                        return expand_targets(r, address, value, ORIGIN_ALIAS, runas, domain,
                                              propagate ? local[strlen(base)] : 0, propagate ? ext : NULL,
                                              &chain, l);
                }
        }

        k = lookup_account(lbase, &account);
        if (k < 0)
                return tempfail(l, address, k, "user lookup failed");
        if (k == 0)
                return add_failure(l, address, MAIL_PERMFAIL, "5.1.1", "User unknown in local recipient table");
        k = add_delivery(l, DELIVERY_MAILBOX, address, account, ext, NULL);
        if (k == -E2BIG)
                return add_failure(l, address, MAIL_PERMFAIL, "5.3.4", "alias expansion limit exceeded");
        return k;
}

static int expand_targets(Resolver *r, const char *address, const char *value, Origin origin,
                          const char *runas, const char *domain, char delim, const char *ext,
                          const Chain *chain, DeliveryList *l) {
        AliasTarget *t = NULL;
        size_t n = 0;
        bool may_cmd, may_file;
        int k = 0;

        may_cmd = (origin == ORIGIN_ALIAS && r->cmd_alias) || (origin == ORIGIN_FORWARD && r->cmd_forward) ||
                (origin == ORIGIN_INCLUDE && r->cmd_include);
        may_file = (origin == ORIGIN_ALIAS && r->file_alias) || (origin == ORIGIN_FORWARD && r->file_forward) ||
                (origin == ORIGIN_INCLUDE && r->file_include);

        k = alias_split_targets(value, &t, &n);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return add_failure(l, address, MAIL_PERMFAIL, "5.3.0", "malformed alias or forward entry");

        for (size_t i = 0; i < n && k >= 0; i++) {
                const char *v = t[i].value;

                switch (t[i].kind) {
                case ALIAS_TARGET_COMMAND:
                case ALIAS_TARGET_FILE: {
                        bool cmd = t[i].kind == ALIAS_TARGET_COMMAND;
                        if (origin == ORIGIN_VIRTUAL)
                                k = add_failure(l, address, MAIL_PERMFAIL, "5.7.1",
                                                "virtual alias maps cannot deliver to commands or files");
                        else if (!(cmd ? may_cmd : may_file))
                                k = add_failure(l, address, MAIL_PERMFAIL, "5.7.1", "mail to %s is restricted",
                                                cmd ? "command" : "file");
                        else {
                                k = add_delivery(l, cmd ? DELIVERY_COMMAND : DELIVERY_FILE, address, runas, NULL, v);
                                if (k == -E2BIG)
                                        k = add_failure(l, address, MAIL_PERMFAIL, "5.3.4",
                                                        "alias expansion limit exceeded");
                        }
                        break;
                }
                case ALIAS_TARGET_INCLUDE:
                        if (origin == ORIGIN_VIRTUAL)
                                k = add_failure(l, address, MAIL_PERMFAIL, "5.7.1",
                                                "virtual alias maps cannot use :include:");
                        else
                                k = expand_include(r, address, v, domain, chain, l);
                        break;
                case ALIAS_TARGET_ADDRESS: {
                        _cleanup_free_ char *withext = NULL;

                        if (v[0] == '\\' && origin != ORIGIN_VIRTUAL) {
                                /* "\user": that user's mailbox, no further aliasing or forwarding. */
                                _cleanup_free_ char *local = NULL, *dom = NULL, *a = NULL;
                                k = address_split(v + 1, &local, &dom);
                                if (k == 0 && asprintf(&a, "%s@%s", local,
                                                       isempty(dom) ? (isempty(domain) ? r->myorigin : domain) : dom) < 0)
                                        k = -ENOMEM;
                                if (k == 0)
                                        k = expand_local(r, a, local, dom, true, chain, l);
                                else if (k == -EINVAL)
                                        k = add_failure(l, address, MAIL_PERMFAIL, "5.1.3", "bad address syntax: %s", v);
                                break;
                        }
                        if (ext && delim) {
                                k = add_extension(v, delim, ext, &withext);
                                if (k == -EINVAL)
                                        k = add_failure(l, address, MAIL_PERMFAIL, "5.1.3", "bad address syntax: %s", v);
                                if (k < 0)
                                        break;
                                v = withext;
                        }
                        k = expand(r, v, chain, l);
                        break;
                }
                }
        }
        alias_targets_free(t, n);
        return k;
}

static int expand(Resolver *r, const char *addr, const Chain *up, DeliveryList *l) {
        _cleanup_free_ char *qualified = NULL, *local = NULL, *domain = NULL, *key = NULL, *value = NULL,
                *lower_local = NULL;
        DomainClass class;
        bool ext_matched = false, catchall = false;
        int k;

        k = resolver_qualify(r, addr, &qualified);
        if (k < 0)
                return k;
        k = address_split(qualified, &local, &domain);
        if (k == -EINVAL || (k == 0 && !*local))
                return add_failure(l, qualified, MAIL_PERMFAIL, "5.1.3", "bad address syntax");
        if (k < 0)
                return k;
        /* From here on the address is spelled with its domain in lower case. */
        free(qualified);
        qualified = NULL;
        k = address_join(local, domain, &qualified);
        if (k < 0)
                return k;
        k = resolver_classify_domain(r, domain, &class);
        if (k == -ENOMEM)
                return k;
        if (k < 0)
                return tempfail(l, qualified, k, "domain lookup failed");

        k = address_lower(local, &lower_local);
        if (k < 0)
                return k;
        if (asprintf(&key, "%s@%s", lower_local, domain) < 0)
                return -ENOMEM;

        if (!chain_has(up, key)) {
                k = virtual_lookup(r, lower_local, domain, &value, &ext_matched, &catchall);
                if (k < 0)
                        return tempfail(l, qualified, k, "virtual alias map lookup failed");
                if (k > 0) {
                        _cleanup_free_ char *base = NULL, *ext = NULL, *rewritten = NULL;
                        Chain chain = { .up = up, .key = key, .depth = up ? up->depth + 1 : 1 };
                        const char *v = value;

                        if (chain.depth > RESOLVE_DEPTH_MAX)
                                return add_failure(l, qualified, MAIL_PERMFAIL, "5.4.6",
                                                   "virtual alias expansion nested too deeply");
                        k = address_split_extension(local, r->delimiters, &base, &ext);
                        if (k < 0)
                                return k;
                        /* "@example.org  @example.net" keeps the local part: user@... -> user@example.net. */
                        if (catchall && value[0] == '@' && !strpbrk(value, ", \t")) {
                                _cleanup_free_ char *d = strdup(value + 1);
                                if (!d)
                                        return -ENOMEM;
                                k = address_join(local, ascii_strlower(d), &rewritten);
                                if (k < 0)
                                        return k;
                                return expand(r, rewritten, &chain, l);
                        }
                        bool propagate = ext && !ext_matched && r->propagate_virtual;
                        return expand_targets(r, qualified, v, ORIGIN_VIRTUAL, NULL, domain,
                                              propagate ? local[strlen(base)] : 0, propagate ? ext : NULL, &chain, l);
                }
        }

        switch (class) {
        case DOMAIN_VIRTUAL_ALIAS:
                return add_failure(l, qualified, MAIL_PERMFAIL, "5.1.1", "User unknown in virtual alias table");
        case DOMAIN_REMOTE:
                k = add_delivery(l, DELIVERY_REMOTE, qualified, NULL, NULL, NULL);
                if (k == -E2BIG)
                        return add_failure(l, qualified, MAIL_PERMFAIL, "5.3.4", "alias expansion limit exceeded");
                return k;
        case DOMAIN_LOCAL:
        default:
                return expand_local(r, qualified, local, domain, false, up, l);
        }
}

int resolver_expand(Resolver *r, const char *rcpt, DeliveryList *ret) {
        DeliveryList l = {};
        int k;

        k = expand(r, rcpt, NULL, &l);
        if (k < 0) {
                delivery_list_done(&l);
                return k;
        }
        *ret = l;
        return 0;
}

int resolver_expand_forward(Resolver *r, const char *user, const char *forward_text, DeliveryList *ret) {
        _cleanup_free_ char *text = NULL, *account = NULL, *lower = NULL;
        DeliveryList l = {};
        int k;

        k = lookup_account(user, &account);
        if (k == 0)
                k = -ENOENT;
        if (k < 0)
                return k;
        text = strdup(forward_text);
        if (!text)
                return -ENOMEM;

        /* The user is on the chain: naming oneself in .forward means one's own mailbox. */
        k = address_lower(account, &lower);
        if (k < 0)
                return k;
        Chain chain = { .key = lower, .depth = 1 };
        for (char *p = text; p && *p;) {
                char *nl = strchr(p, '\n'), *line;
                if (nl)
                        *nl = 0;
                line = strstrip(p);
                if (*line && *line != '#') {
                        _cleanup_free_ char *address = NULL;
                        if (asprintf(&address, "%s@%s", account, r->myorigin) < 0) {
                                k = -ENOMEM;
                                break;
                        }
                        k = expand_targets(r, address, line, ORIGIN_FORWARD, account, r->myorigin, 0, NULL, &chain, &l);
                        if (k < 0)
                                break;
                }
                p = nl ? nl + 1 : NULL;
        }
        if (k < 0) {
                delivery_list_done(&l);
                return k;
        }
        *ret = l;
        return 0;
}

int resolver_check_recipient(Resolver *r, const char *addr, RecipientCheck *ret) {
        _cleanup_free_ char *qualified = NULL, *local = NULL, *domain = NULL, *lower = NULL, *value = NULL,
                *base = NULL, *ext = NULL;
        DomainClass class;
        bool ext_matched, catchall;
        Map *map;
        int k;

        k = resolver_qualify(r, addr, &qualified);
        if (k < 0)
                return k;
        k = address_split(qualified, &local, &domain);
        if (k < 0)
                return k;
        k = resolver_classify_domain(r, domain, &class);
        if (k < 0)
                return k;
        if (class == DOMAIN_REMOTE) {
                *ret = RECIPIENT_REMOTE;
                return 0;
        }

        k = address_lower(local, &lower);
        if (k < 0)
                return k;
        k = virtual_lookup(r, lower, domain, &value, &ext_matched, &catchall);
        if (k < 0)
                return k;
        if (class == DOMAIN_VIRTUAL_ALIAS) {
                *ret = k > 0 ? RECIPIENT_VIRTUAL_OK : RECIPIENT_VIRTUAL_UNKNOWN;
                return 0;
        }
        if (k > 0 || !r->local_recipient_check || !*lower) {
                *ret = *lower ? RECIPIENT_LOCAL_OK : RECIPIENT_LOCAL_UNKNOWN;
                return 0;
        }

        k = address_split_extension(lower, r->delimiters, &base, &ext);
        if (k < 0)
                return k;
        free(value);
        value = NULL;
        k = alias_lookup(r, lower, base, &value, &map, &ext_matched);
        if (k < 0)
                return k;
        if (k == 0)
                k = lookup_account(base, NULL);
        if (k < 0)
                return k;
        *ret = k > 0 ? RECIPIENT_LOCAL_OK : RECIPIENT_LOCAL_UNKNOWN;
        return 0;
}
