/* SPDX-License-Identifier: MIT */
/*
 * The resolver against real compiled maps in a temporary directory. Mailbox users are accounts
 * every Debian system has (root, daemon, bin); commands and files run as the owner of the alias
 * map, so the test needs root to chown a map (it skips those checks otherwise).
 */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/macro.h"
#include "common/map.h"
#include "common/resolve.h"

static char dir[] = "/tmp/test-resolve-XXXXXX";

static char *path_in(const char *name) {
        char *p;
        assert(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void write_map(const char *name, const char *text, MapSyntax syntax) {
        _cleanup_free_ char *p = path_in(name), *err = NULL;
        FILE *f = fopen(p, "we");
        assert(f);
        fputs(text, f);
        assert(fclose(f) == 0);
        if (syntax != (MapSyntax) -1) {
                assert(map_build(p, syntax, &err) == 0);
                assert(!err);
        }
}

static Config *make_config(const char *extra_name, const char *extra_value) {
        Config *c = NULL;
        _cleanup_free_ char *aliases = NULL, *virtual = NULL, *mydest = NULL;

        assert(config_new_defaults(dir, &c) == 0);
        assert(asprintf(&aliases, "hash:%s/aliases", dir) > 0);
        assert(asprintf(&virtual, "hash:%s/virtual", dir) > 0);
        assert(asprintf(&mydest, "example.test, localhost, .sub.example.test, hash:%s/mydest", dir) > 0);
        assert(config_set(c, "myhostname", "mx.example.test") == 0);
        assert(config_set(c, "mydomain", "example.test") == 0);
        assert(config_set(c, "myorigin", "Example.TEST") == 0);
        assert(config_set(c, "mydestination", mydest) == 0);
        assert(config_set(c, "alias_maps", aliases) == 0);
        assert(config_set(c, "virtual_alias_maps", virtual) == 0);
        assert(config_set(c, "recipient_delimiter", "+") == 0);
        assert(config_set(c, "default_privs", "nobody") == 0);
        if (extra_name)
                assert(config_set(c, extra_name, extra_value) == 0);
        return c;
}

static void test_classify(Resolver *r) {
        DomainClass c;

        assert(resolver_classify_domain(r, "example.test", &c) == 0 && c == DOMAIN_LOCAL);
        assert(resolver_classify_domain(r, "", &c) == 0 && c == DOMAIN_LOCAL);
        assert(resolver_classify_domain(r, "localhost", &c) == 0 && c == DOMAIN_LOCAL);
        assert(resolver_classify_domain(r, "a.sub.example.test", &c) == 0 && c == DOMAIN_LOCAL);
        assert(resolver_classify_domain(r, "sub.example.test", &c) == 0 && c == DOMAIN_REMOTE);
        assert(resolver_classify_domain(r, "mapped.example", &c) == 0 && c == DOMAIN_LOCAL);   /* mydest map */
        assert(resolver_classify_domain(r, "virtual.example", &c) == 0 && c == DOMAIN_VIRTUAL_ALIAS);
        assert(resolver_classify_domain(r, "remote.example", &c) == 0 && c == DOMAIN_REMOTE);
        assert(resolver_classify_domain(r, "[127.0.0.1]", &c) == 0 && c == DOMAIN_LOCAL);
        assert(resolver_classify_domain(r, "[192.0.2.77]", &c) == 0 && c == DOMAIN_REMOTE);

        _cleanup_free_ char *q = NULL, *q2 = NULL;
        assert(resolver_qualify(r, "root", &q) == 0 && streq(q, "root@example.test"));
        assert(resolver_qualify(r, "a@b", &q2) == 0 && streq(q2, "a@b"));
}

static void check(Resolver *r, const char *addr, RecipientCheck want) {
        RecipientCheck got = (RecipientCheck) -1;
        int k = resolver_check_recipient(r, addr, &got);
        if (k < 0 || got != want)
                fprintf(stderr, "check %s: %d %d, want %d\n", addr, k, got, want);
        assert(k == 0 && got == want);
}

static void test_check(Resolver *r) {
        check(r, "root@example.test", RECIPIENT_LOCAL_OK);
        check(r, "ROOT@Example.Test", RECIPIENT_LOCAL_OK);
        check(r, "root+ext@example.test", RECIPIENT_LOCAL_OK);
        check(r, "postmaster@localhost", RECIPIENT_LOCAL_OK);            /* alias */
        check(r, "list@example.test", RECIPIENT_LOCAL_OK);
        check(r, "no-such-user@example.test", RECIPIENT_LOCAL_UNKNOWN);
        check(r, "no-such-user", RECIPIENT_LOCAL_UNKNOWN);
        check(r, "vonly@example.test", RECIPIENT_LOCAL_OK);              /* virtual map, local domain */
        check(r, "info@virtual.example", RECIPIENT_VIRTUAL_OK);
        check(r, "info+tag@virtual.example", RECIPIENT_VIRTUAL_OK);
        check(r, "nobody-here@virtual.example", RECIPIENT_VIRTUAL_UNKNOWN);
        check(r, "anyone@catchall.example", RECIPIENT_VIRTUAL_OK);
        check(r, "someone@remote.example", RECIPIENT_REMOTE);
        /* Relay tricks are local parts of our domain, hence unknown users, never relayed. */
        check(r, "user%remote.example@example.test", RECIPIENT_LOCAL_UNKNOWN);
        check(r, "\"user@remote.example\"@example.test", RECIPIENT_LOCAL_UNKNOWN);
        check(r, "remote.example!user@example.test", RECIPIENT_LOCAL_UNKNOWN);
        check(r, "user@remote.example@example.test", RECIPIENT_LOCAL_UNKNOWN);
}

static const Delivery *find(const DeliveryList *l, DeliveryKind kind, const char *what) {
        for (size_t i = 0; i < l->n; i++) {
                const Delivery *d = &l->items[i];
                if (d->kind != kind)
                        continue;
                if ((kind == DELIVERY_MAILBOX && streq(d->user, what)) ||
                    (kind == DELIVERY_REMOTE && streq(d->address, what)) ||
                    ((kind == DELIVERY_FILE || kind == DELIVERY_COMMAND) && streq(d->target, what)) ||
                    (kind == DELIVERY_FAILED && streq(d->address, what)))
                        return d;
        }
        return NULL;
}

static void dump(const char *rcpt, const DeliveryList *l) {
        fprintf(stderr, "%s:\n", rcpt);
        for (size_t i = 0; i < l->n; i++) {
                const Delivery *d = &l->items[i];
                fprintf(stderr, "  kind=%d address=%s user=%s ext=%s target=%s status=%d dsn=%s reason=%s\n", d->kind,
                        strempty(d->address), strempty(d->user), strempty(d->extension), strempty(d->target),
                        d->status, strempty(d->dsn), strempty(d->reason));
        }
}

static void expand(Resolver *r, const char *rcpt, DeliveryList *l, size_t want_n) {
        assert(resolver_expand(r, rcpt, l) == 0);
        if (l->n != want_n)
                dump(rcpt, l);
        assert(l->n == want_n);
}

static void test_expand(Resolver *r) {
        DeliveryList l = {};
        const Delivery *d;

        expand(r, "root@example.test", &l, 1);
        d = find(&l, DELIVERY_MAILBOX, "root");
        assert(d && streq(d->address, "root@example.test") && !d->extension);
        delivery_list_done(&l);

        /* The extension stays with the mailbox. */
        expand(r, "Root+Tag@example.test", &l, 1);
        d = find(&l, DELIVERY_MAILBOX, "root");
        assert(d && d->extension && streq(d->extension, "Tag"));
        delivery_list_done(&l);

        /* postmaster -> root; list -> daemon, bin, and a remote address; duplicates collapse. */
        expand(r, "postmaster", &l, 1);
        assert(find(&l, DELIVERY_MAILBOX, "root"));
        delivery_list_done(&l);
        expand(r, "list@example.test", &l, 3);
        assert(find(&l, DELIVERY_MAILBOX, "daemon"));
        assert(find(&l, DELIVERY_MAILBOX, "bin"));
        assert(find(&l, DELIVERY_REMOTE, "friend@remote.example"));
        delivery_list_done(&l);

        /* "self: self, bin": self is delivered as itself (here: unknown account, so failed). */
        expand(r, "daemon", &l, 2);
        assert(find(&l, DELIVERY_MAILBOX, "daemon"));
        assert(find(&l, DELIVERY_MAILBOX, "bin"));
        delivery_list_done(&l);

        /* a -> b -> a: the loop ends where a meets itself, delivered as itself (no such account). */
        expand(r, "loop-a", &l, 1);
        d = find(&l, DELIVERY_FAILED, "loop-a@example.test");
        assert(d && d->status == MAIL_PERMFAIL && streq(d->dsn, "5.1.1"));
        delivery_list_done(&l);

        /* A chain deeper than 20 fails. */
        expand(r, "deep0", &l, 1);
        d = &l.items[0];
        assert(d->kind == DELIVERY_FAILED && streq(d->dsn, "5.4.6"));
        delivery_list_done(&l);
        expand(r, "deep5", &l, 1);      /* 15 levels are fine */
        assert(find(&l, DELIVERY_MAILBOX, "root"));
        delivery_list_done(&l);

        /* Unknown local user. */
        expand(r, "nobody-here@example.test", &l, 1);
        d = find(&l, DELIVERY_FAILED, "nobody-here@example.test");
        assert(d && d->status == MAIL_PERMFAIL && streq(d->dsn, "5.1.1") &&
               streq(d->reason, "User unknown in local recipient table"));
        delivery_list_done(&l);

        /* Commands and files from an alias map run as default_privs when root owns the map. */
        expand(r, "prog", &l, 2);
        d = find(&l, DELIVERY_COMMAND, "/usr/bin/foo -x");
        assert(d && streq(d->user, geteuid() == 0 ? "nobody" : d->user) && streq(d->address, "prog@example.test"));
        d = find(&l, DELIVERY_FILE, "/tmp/some file");
        assert(d);
        delivery_list_done(&l);

        /* :include: files: addresses are expanded; commands there need "include". */
        expand(r, "inc", &l, 3);
        assert(find(&l, DELIVERY_MAILBOX, "root"));
        assert(find(&l, DELIVERY_MAILBOX, "bin"));
        d = find(&l, DELIVERY_FAILED, "inc@example.test");
        assert(d && d->status == MAIL_PERMFAIL && streq(d->dsn, "5.7.1") &&
               streq(d->reason, "mail to command is restricted"));
        delivery_list_done(&l);

        /* A missing include file is a temporary failure. */
        expand(r, "badinc", &l, 1);
        d = &l.items[0];
        assert(d->kind == DELIVERY_FAILED && d->status == MAIL_TEMPFAIL && streq(d->dsn, "4.3.0"));
        delivery_list_done(&l);

        /* "\sys" is sys's mailbox without aliasing (sys is aliased to bin). */
        expand(r, "backslash", &l, 1);
        assert(find(&l, DELIVERY_MAILBOX, "sys"));
        delivery_list_done(&l);
        expand(r, "sys", &l, 1);
        assert(find(&l, DELIVERY_MAILBOX, "bin"));
        delivery_list_done(&l);

        /* Virtual: user+ext@domain, user@domain, @domain; results routed again. */
        expand(r, "info@virtual.example", &l, 2);
        assert(find(&l, DELIVERY_MAILBOX, "root"));
        assert(find(&l, DELIVERY_REMOTE, "info@remote.example"));
        delivery_list_done(&l);
        expand(r, "info+tag@virtual.example", &l, 2);     /* extension propagated (propagate: virtual) */
        d = find(&l, DELIVERY_MAILBOX, "root");
        assert(d && d->extension && streq(d->extension, "tag"));
        assert(find(&l, DELIVERY_REMOTE, "info+tag@remote.example"));
        delivery_list_done(&l);
        expand(r, "sales+x@virtual.example", &l, 1);      /* exact user+ext key first */
        assert(find(&l, DELIVERY_MAILBOX, "bin"));
        delivery_list_done(&l);
        expand(r, "nobody-here@virtual.example", &l, 1);
        d = find(&l, DELIVERY_FAILED, "nobody-here@virtual.example");
        assert(d && d->status == MAIL_PERMFAIL && streq(d->dsn, "5.1.1") &&
               streq(d->reason, "User unknown in virtual alias table"));
        delivery_list_done(&l);
        expand(r, "anyone@catchall.example", &l, 2);       /* daemon is aliased to daemon, bin */
        assert(find(&l, DELIVERY_MAILBOX, "daemon"));
        delivery_list_done(&l);
        expand(r, "anyone@moved.example", &l, 1);          /* @moved.example -> @remote.example */
        assert(find(&l, DELIVERY_REMOTE, "anyone@remote.example"));
        delivery_list_done(&l);
        expand(r, "vonly@example.test", &l, 2);            /* virtual applies to local domains too */
        assert(find(&l, DELIVERY_MAILBOX, "daemon"));
        delivery_list_done(&l);
        expand(r, "vloop@virtual.example", &l, 1);         /* a virtual loop ends in "unknown" */
        assert(l.items[0].kind == DELIVERY_FAILED);
        delivery_list_done(&l);
        expand(r, "vcmd@virtual.example", &l, 1);
        d = &l.items[0];
        assert(d->kind == DELIVERY_FAILED && streq(d->dsn, "5.7.1"));
        delivery_list_done(&l);

        expand(r, "someone@Remote.Example", &l, 1);
        assert(find(&l, DELIVERY_REMOTE, "someone@remote.example"));
        delivery_list_done(&l);

        /* Relay tricks never become remote deliveries. */
        expand(r, "user%remote.example@example.test", &l, 1);
        assert(l.items[0].kind == DELIVERY_FAILED && streq(l.items[0].dsn, "5.1.1"));
        delivery_list_done(&l);
        expand(r, "\"user@remote.example\"@example.test", &l, 1);
        assert(l.items[0].kind == DELIVERY_FAILED && streq(l.items[0].dsn, "5.1.1"));
        delivery_list_done(&l);
}

static void test_forward(Resolver *r) {
        DeliveryList l = {};
        const Delivery *d;

        assert(resolver_expand_forward(r, "daemon",
                                       "# my forward\n"
                                       "\\daemon, friend@remote.example\n"
                                       "\"|/usr/bin/procmail -t\"\n"
                                       "/var/tmp/daemon.mbox\n"
                                       "daemon\n", &l) == 0);
        if (l.n != 4)
                dump(".forward", &l);
        assert(l.n == 4);
        assert(find(&l, DELIVERY_MAILBOX, "daemon"));
        assert(find(&l, DELIVERY_REMOTE, "friend@remote.example"));
        d = find(&l, DELIVERY_COMMAND, "/usr/bin/procmail -t");
        assert(d && streq(d->user, "daemon"));
        d = find(&l, DELIVERY_FILE, "/var/tmp/daemon.mbox");
        assert(d && streq(d->user, "daemon"));
        delivery_list_done(&l);

        assert(resolver_expand_forward(r, "no-such-account", "x", &l) == -ENOENT);
}

static void test_restricted(void) {
        _cleanup_(config_freep) Config *c = make_config("allow_mail_to_commands", "forward");
        _cleanup_(resolver_freep) Resolver *r = NULL;
        DeliveryList l = {};
        const Delivery *d;

        assert(config_set(c, "allow_mail_to_files", "") == 0);
        assert(resolver_new(c, &r) == 0);
        expand(r, "prog", &l, 1);
        d = &l.items[0];
        assert(d->kind == DELIVERY_FAILED && d->status == MAIL_PERMFAIL && streq(d->dsn, "5.7.1"));
        delivery_list_done(&l);
        assert(resolver_expand_forward(r, "daemon", "/tmp/x\n|cmd\n", &l) == 0);
        assert(l.n == 2);
        assert(find(&l, DELIVERY_COMMAND, "cmd"));
        assert(find(&l, DELIVERY_FAILED, "daemon@example.test"));
        delivery_list_done(&l);

        /* "include" lets :include: files run commands. */
        _cleanup_(config_freep) Config *c2 = make_config("allow_mail_to_commands", "alias, include");
        _cleanup_(resolver_freep) Resolver *r2 = NULL;
        assert(resolver_new(c2, &r2) == 0);
        expand(r2, "inc", &l, 3);
        assert(find(&l, DELIVERY_COMMAND, "/bin/cat"));
        delivery_list_done(&l);
}

static void test_owner(void) {
        _cleanup_(config_freep) Config *c = make_config(NULL, NULL);
        _cleanup_(resolver_freep) Resolver *r = NULL;
        _cleanup_free_ char *db = path_in("aliases.db");
        DeliveryList l = {};
        const Delivery *d;

        if (geteuid() != 0) {
                fprintf(stderr, "not root: skipping the map owner check\n");
                return;
        }
        assert(chown(db, 1, 1) == 0);   /* daemon */
        assert(resolver_new(c, &r) == 0);
        expand(r, "prog", &l, 2);
        d = find(&l, DELIVERY_COMMAND, "/usr/bin/foo -x");
        assert(d && streq(d->user, "daemon"));
        delivery_list_done(&l);
        assert(chown(db, 0, 0) == 0);
}

static void test_map_errors(void) {
        _cleanup_(config_freep) Config *c = make_config("alias_maps", "hash:/nonexistent/aliases");
        _cleanup_(resolver_freep) Resolver *r = NULL;
        DeliveryList l = {};
        RecipientCheck rc;

        assert(resolver_new(c, &r) == 0);
        /* A map that cannot be read is a temporary failure, never "unknown". */
        assert(resolver_check_recipient(r, "whoever@example.test", &rc) < 0);
        expand(r, "whoever@example.test", &l, 1);
        assert(l.items[0].kind == DELIVERY_FAILED && l.items[0].status == MAIL_TEMPFAIL &&
               streq(l.items[0].dsn, "4.3.0"));
        delivery_list_done(&l);
        /* Remote mail does not depend on the alias map. */
        assert(resolver_check_recipient(r, "x@remote.example", &rc) == 0 && rc == RECIPIENT_REMOTE);

        _cleanup_(config_freep) Config *c2 = make_config("virtual_alias_maps", "ldap:/etc/x");
        _cleanup_(resolver_freep) Resolver *r2 = NULL;
        assert(resolver_new(c2, &r2) == 0);
        assert(resolver_check_recipient(r2, "x@remote.example", &rc) < 0);
}

int main(void) {
        _cleanup_free_ char *aliases = NULL, *inc = NULL, *badinc = NULL;

        assert(mkdtemp(dir));
        assert(asprintf(&inc, "%s/list.inc", dir) > 0);
        write_map("list.inc", "# members\nroot, bin\n|/bin/cat\n", (MapSyntax) -1);
        assert(asprintf(&aliases,
                        "postmaster: root\n"
                        "list: daemon, bin, friend@remote.example, bin@example.test\n"
                        "daemon: daemon, bin\n"
                        "loop-a: loop-b\n"
                        "loop-b: loop-a\n"
                        "prog: \"|/usr/bin/foo -x\", \"/tmp/some file\"\n"
                        "inc: :include:%s\n"
                        "badinc: :include:%s/missing.inc\n"
                        "sys: bin\n"
                        "backslash: \\sys\n"
                        "deep0: deep1\ndeep1: deep2\ndeep2: deep3\ndeep3: deep4\ndeep4: deep5\ndeep5: deep6\n"
                        "deep6: deep7\ndeep7: deep8\ndeep8: deep9\ndeep9: deep10\ndeep10: deep11\n"
                        "deep11: deep12\ndeep12: deep13\ndeep13: deep14\ndeep14: deep15\ndeep15: deep16\n"
                        "deep16: deep17\ndeep17: deep18\ndeep18: deep19\ndeep19: deep20\ndeep20: \\root\n",
                        inc, dir) > 0);
        write_map("aliases", aliases, MAP_SYNTAX_ALIASES);
        write_map("virtual",
                  "virtual.example anything\n"
                  "info@virtual.example \\root@example.test, info@remote.example\n"
                  "sales@virtual.example daemon\n"
                  "sales+x@virtual.example bin\n"
                  "catchall.example x\n"
                  "@catchall.example daemon@example.test\n"
                  "moved.example x\n"
                  "@moved.example @Remote.Example\n"
                  "vonly@example.test daemon\n"
                  "vloop@virtual.example vloop2@virtual.example\n"
                  "vloop2@virtual.example vloop@virtual.example\n"
                  "vcmd@virtual.example |/bin/sh\n",
                  MAP_SYNTAX_POSTMAP);
        write_map("mydest", "mapped.example ok\n", MAP_SYNTAX_POSTMAP);

        _cleanup_(config_freep) Config *c = make_config(NULL, NULL);
        _cleanup_(resolver_freep) Resolver *r = NULL;
        assert(resolver_new(c, &r) == 0);

        test_classify(r);
        test_check(r);
        test_expand(r);
        test_forward(r);
        test_restricted();
        test_owner();
        test_map_errors();

        _cleanup_free_ char *cmd = NULL;
        assert(asprintf(&cmd, "rm -rf %s", dir) > 0);
        assert(system(cmd) == 0);
        printf("test-resolve: ok\n");
        return 0;
}
