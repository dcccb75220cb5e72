/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/address.h"
#include "common/macro.h"

static void check_path(const char *arg, const char *want, const char *want_params) {
        _cleanup_free_ char *a = NULL;
        const char *params = NULL;
        int r = address_parse_path(arg, &a, &params);

        if (!want) {
                if (r != -EINVAL)
                        fprintf(stderr, "expected -EINVAL for [%s], got %d (%s)\n", arg, r, strempty(a));
                assert(r == -EINVAL);
                assert(!a);
                return;
        }
        if (r != 0 || !streq(a, want))
                fprintf(stderr, "[%s] -> %d [%s], want [%s]\n", arg, r, strempty(a), want);
        assert(r == 0);
        assert(streq(a, want));
        assert(streq(params, want_params ? want_params : ""));
}

static void test_parse_path(void) {
        check_path("<alice@example.org>", "alice@example.org", NULL);
        check_path("  <alice@example.org>  SIZE=100 BODY=8BITMIME", "alice@example.org", "SIZE=100 BODY=8BITMIME");
        check_path("<>", "", NULL);
        check_path("<> SIZE=10", "", "SIZE=10");
        check_path("alice@example.org", "alice@example.org", NULL);      /* no brackets, as Postfix */
        check_path("<postmaster>", "postmaster", NULL);
        /* Relay tricks stay local parts of our domain: never routing. */
        check_path("<user%other.example@us.example>", "user%other.example@us.example", NULL);
        check_path("<\"user@other.example\"@us.example>", "\"user@other.example\"@us.example", NULL);
        check_path("<user@other.example@us.example>", "user@other.example@us.example", NULL);
        check_path("<other.example!user@us.example>", "other.example!user@us.example", NULL);
        /* Source routes are stripped before any check. */
        check_path("<@a.example,@b.example:user@c.example>", "user@c.example", NULL);
        check_path("<@a.example:user@c.example>", "user@c.example", NULL);
        check_path("<@a.example:>", NULL, NULL);
        check_path("<@a.example,@b.example>", NULL, NULL);
        /* IP literals, with '>' or spaces inside brackets not ending the path. */
        check_path("<user@[192.0.2.1]>", "user@[192.0.2.1]", NULL);
        check_path("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", NULL);
        check_path("<\"a b\"@example.org>", "\"a b\"@example.org", NULL);
        check_path("<\"a>b\"@example.org>", "\"a>b\"@example.org", NULL);
        check_path("<a\\ b@example.org>", "a\\ b@example.org", NULL);
        /* Malformed. */
        check_path("<alice@example.org", NULL, NULL);
        check_path("alice@example.org>", NULL, NULL);
        check_path("<\"alice@example.org>", NULL, NULL);
        check_path("<alice@[192.0.2.1>", NULL, NULL);
        check_path("<alice@192.0.2.1]>", NULL, NULL);
        check_path("<al ice@example.org>", NULL, NULL);
        check_path("<<alice@example.org>>", NULL, NULL);
        check_path("<alice@example.org>junk", NULL, NULL);
        check_path("<alice\r@example.org>", NULL, NULL);
        check_path("<alice\x01@example.org>", NULL, NULL);
        check_path("<alice\x7f@example.org>", NULL, NULL);
        check_path("<alice@exa\nmple.org>", NULL, NULL);
        check_path("<a\\", NULL, NULL);
        check_path("", NULL, NULL);
        check_path("   ", NULL, NULL);
        check_path("<@example.org>", NULL, NULL);
        check_path("<alice@>", NULL, NULL);

        /* Length: 254 octets pass, 255 do not. */
        char buf[300], arg[310];
        memset(buf, 'a', 254);
        memcpy(buf + 254 - 12, "@example.org", 12);
        buf[254] = 0;
        snprintf(arg, sizeof(arg), "<%s>", buf);
        check_path(arg, buf, NULL);
        memset(buf, 'a', 255);
        memcpy(buf + 255 - 12, "@example.org", 12);
        buf[255] = 0;
        snprintf(arg, sizeof(arg), "<%s>", buf);
        check_path(arg, NULL, NULL);
}

static void check_split(const char *addr, const char *want_local, const char *want_domain) {
        _cleanup_free_ char *l = NULL, *d = NULL;
        int r = address_split(addr, &l, &d);

        if (!want_local) {
                assert(r == -EINVAL);
                assert(!l && !d);
                return;
        }
        assert(r == 0);
        if (!streq(l, want_local) || !streq(d, want_domain))
                fprintf(stderr, "split [%s] -> [%s] [%s]\n", addr, l, d);
        assert(streq(l, want_local));
        assert(streq(d, want_domain));
}

static void test_split(void) {
        check_split("Alice@Example.ORG", "Alice", "example.org");
        check_split("alice", "alice", "");
        check_split("user%other@us.example", "user%other", "us.example");
        check_split("\"user@other\"@us.example", "user@other", "us.example");
        check_split("user@other@us.example", "user@other", "us.example");
        check_split("host!user@us.example", "host!user", "us.example");
        check_split("\"a b\"@x", "a b", "x");
        check_split("a\\@b@x", "a@b", "x");
        check_split("user@[192.0.2.1]", "user", "[192.0.2.1]");
        check_split("\"unbalanced@x", NULL, NULL);
}

static void check_join(const char *l, const char *d, const char *want) {
        _cleanup_free_ char *s = NULL;
        assert(address_join(l, d, &s) == 0);
        if (!streq(s, want))
                fprintf(stderr, "join [%s] [%s] -> [%s]\n", l, d, s);
        assert(streq(s, want));
}

static void test_join(void) {
        check_join("alice", "example.org", "alice@example.org");
        check_join("alice.b+x", "example.org", "alice.b+x@example.org");
        check_join("a b", "example.org", "\"a b\"@example.org");
        check_join("user@other", "us.example", "\"user@other\"@us.example");
        check_join("a\"b", "x", "\"a\\\"b\"@x");
        check_join(".a", "x", "\".a\"@x");
        check_join("a..b", "x", "\"a..b\"@x");
        check_join("alice", "", "alice");
        check_join("", "x", "\"\"@x");
        /* Round trip through split. */
        _cleanup_free_ char *s = NULL, *l = NULL, *d = NULL;
        assert(address_join("we\"ird \\ one", "x", &s) == 0);
        assert(address_split(s, &l, &d) == 0);
        assert(streq(l, "we\"ird \\ one"));
        assert(streq(d, "x"));
}

static void check_ext(const char *local, const char *delim, const char *want_base, const char *want_ext) {
        _cleanup_free_ char *b = NULL, *e = NULL;
        assert(address_split_extension(local, delim, &b, &e) == 0);
        assert(streq(b, want_base));
        if (!want_ext)
                assert(!e);
        else
                assert(e && streq(e, want_ext));
}

static void test_extension(void) {
        check_ext("user+foo", "+", "user", "foo");
        check_ext("user+foo+bar", "+", "user", "foo+bar");
        check_ext("user", "+", "user", NULL);
        check_ext("user+foo", "", "user+foo", NULL);
        check_ext("user+foo", NULL, "user+foo", NULL);
        check_ext("user-foo+bar", "+-", "user", "foo+bar");
        check_ext("+foo", "+", "+foo", NULL);
        check_ext("user+", "+", "user", "");
        check_ext("owner-list", "-", "owner-list", NULL);
        check_ext("list-request", "-", "list-request", NULL);
        check_ext("list-foo", "-", "list", "foo");
}

static void test_literal(void) {
        assert(address_domain_is_literal("[192.0.2.1]"));
        assert(address_domain_is_literal("[IPv6:::1]"));
        assert(address_domain_is_literal("[ipv6:2001:db8::1]"));
        assert(!address_domain_is_literal("[192.0.2.256]"));
        assert(!address_domain_is_literal("[::1]"));
        assert(!address_domain_is_literal("[]"));
        assert(!address_domain_is_literal("192.0.2.1"));
        assert(!address_domain_is_literal("[example.org]"));
        assert(!address_domain_is_literal(""));

        _cleanup_free_ char *s = NULL;
        assert(address_lower("Alice@Example.ORG", &s) == 0);
        assert(streq(s, "alice@example.org"));
}

int main(void) {
        test_parse_path();
        test_split();
        test_join();
        test_extension();
        test_literal();
        printf("test-address: ok\n");
        return 0;
}
