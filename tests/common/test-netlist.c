/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/netlist.h"

static NetList *parse_ok(const char *spec) {
        NetList *l = NULL;
        char *err = NULL;
        int r = netlist_parse(spec, &l, &err);
        if (r < 0)
                fprintf(stderr, "'%s': %s\n", spec, err);
        assert(r == 0 && l && !err);
        return l;
}

static void parse_fail(const char *spec, const char *expect) {
        NetList *l = NULL;
        char *err = NULL;
        int r = netlist_parse(spec, &l, &err);
        assert(r < 0);
        assert(!l);
        assert(err);
        if (!strstr(err, expect)) {
                fprintf(stderr, "'%s': error '%s' lacks '%s'\n", spec, err, expect);
                abort();
        }
        free(err);
}

static void test_default(void) {
        _cleanup_(netlist_freep) NetList *l = parse_ok("127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128");

        assert(netlist_match_string(l, "127.0.0.1"));
        assert(netlist_match_string(l, "127.255.255.255"));
        assert(!netlist_match_string(l, "128.0.0.1"));
        assert(netlist_match_string(l, "::1"));
        assert(netlist_match_string(l, "[::1]"));
        assert(!netlist_match_string(l, "::2"));
        assert(netlist_match_string(l, "::ffff:127.0.0.5"));
        assert(!netlist_match_string(l, "::ffff:10.0.0.5"));
        assert(!netlist_match_string(l, "garbage"));
        assert(!netlist_match_string(l, ""));
        assert(!netlist_match_string(l, "[::1"));

        struct sockaddr_in in = { .sin_family = AF_INET };
        assert(inet_pton(AF_INET, "127.1.2.3", &in.sin_addr) == 1);
        assert(netlist_match(l, (struct sockaddr *) &in));
        assert(inet_pton(AF_INET, "192.0.2.1", &in.sin_addr) == 1);
        assert(!netlist_match(l, (struct sockaddr *) &in));

        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
        assert(inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr) == 1);
        assert(netlist_match(l, (struct sockaddr *) &in6));
        assert(inet_pton(AF_INET6, "::1", &in6.sin6_addr) == 1);
        assert(netlist_match(l, (struct sockaddr *) &in6));
        assert(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr) == 1);
        assert(!netlist_match(l, (struct sockaddr *) &in6));

        struct sockaddr un = { .sa_family = AF_UNIX };
        assert(!netlist_match(l, &un));
}

static void test_forms(void) {
        _cleanup_(netlist_freep) NetList *l =
                parse_ok("192.0.2.7, 10.0.0.0/8,,\t2001:db8::/32 [2001:db8:1::]/48 ::1/128 0.0.0.0/0");
        assert(netlist_match_string(l, "192.0.2.7"));
        assert(netlist_match_string(l, "8.8.8.8"));   /* 0.0.0.0/0 */
        assert(netlist_match_string(l, "2001:db8:ffff::1"));
        assert(!netlist_match_string(l, "2001:db9::1"));
        assert(netlist_match_string(l, "::ffff:8.8.8.8"));

        _cleanup_(netlist_freep) NetList *h = parse_ok("192.0.2.7");
        assert(netlist_match_string(h, "192.0.2.7"));
        assert(!netlist_match_string(h, "192.0.2.8"));

        _cleanup_(netlist_freep) NetList *odd = parse_ok("10.1.2.0/23 2001:db8:8000::/33");
        assert(netlist_match_string(odd, "10.1.3.255"));
        assert(!netlist_match_string(odd, "10.1.4.0"));
        assert(netlist_match_string(odd, "2001:db8:ffff::"));
        assert(!netlist_match_string(odd, "2001:db8:7fff::"));

        _cleanup_(netlist_freep) NetList *neg = parse_ok("!192.0.2.1 192.0.2.0/24");
        assert(!netlist_match_string(neg, "192.0.2.1"));
        assert(netlist_match_string(neg, "192.0.2.2"));

        _cleanup_(netlist_freep) NetList *empty = parse_ok("");
        assert(!netlist_match_string(empty, "127.0.0.1"));
}

static void test_broken(void) {
        parse_fail("127.0.0.0/33", "\"127.0.0.0/33\": bad prefix length");
        parse_fail("10.0.0.0/8 ::1/129", "\"::1/129\": bad prefix length");
        parse_fail("10.0.0.0/", "bad prefix length");
        parse_fail("10.0.0.0/-1", "bad prefix length");
        parse_fail("10.0.0.0/08", "bad prefix length");
        parse_fail("10.0.0.0/8x", "bad prefix length");
        parse_fail("10.0.0.0/99999999999999999999", "bad prefix length");
        parse_fail("127.0.0.1/8", "\"127.0.0.1/8\": address has bits set");
        parse_fail("256.0.0.0/8", "\"256.0.0.0/8\": not an IPv4 or IPv6 address");
        parse_fail("10.0.0/8", "not an IPv4");
        parse_fail("example.com", "\"example.com\": not an IPv4");
        parse_fail("[::1", "malformed [address]");
        parse_fail("[::1]x", "malformed [address]");
        parse_fail("[::1]/", "bad prefix length");
        parse_fail("cidr:/etc/mta/networks", "lookup tables are not supported");
        parse_fail("/nonexistent/networks/file", "/nonexistent/networks/file: No such file");
        parse_fail("!/etc/hosts", "cannot be negated");
}

static void test_file(void) {
        char dir[] = "/tmp/test-netlist-XXXXXX";
        char path[256], path2[256], spec[600];
        FILE *f;

        assert(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/networks", dir);
        snprintf(path2, sizeof path2, "%s/more", dir);
        f = fopen(path, "we");
        assert(f);
        fprintf(f, "# trusted networks\n192.0.2.0/24  # office\n\n198.51.100.0/24, [2001:db8::]/32\n%s\n",
                path2);
        fclose(f);
        f = fopen(path2, "we");
        assert(f);
        fprintf(f, "203.0.113.9\n");
        fclose(f);

        snprintf(spec, sizeof spec, "127.0.0.0/8 %s", path);
        _cleanup_(netlist_freep) NetList *l = parse_ok(spec);
        assert(netlist_match_string(l, "192.0.2.200"));
        assert(netlist_match_string(l, "198.51.100.1"));
        assert(netlist_match_string(l, "2001:db8::5"));
        assert(netlist_match_string(l, "203.0.113.9"));
        assert(!netlist_match_string(l, "203.0.113.10"));

        /* A file that names itself loops: cut off with an error, not a crash. */
        f = fopen(path2, "we");
        assert(f);
        fprintf(f, "%s\n", path2);
        fclose(f);
        parse_fail(spec, "nested too deeply");

        /* A bad line in a file is reported with the file and line. */
        f = fopen(path2, "we");
        assert(f);
        fprintf(f, "10.0.0.0/8\n10.0.0.1/8\n");
        fclose(f);
        char expect[300];
        snprintf(expect, sizeof expect, "%s:2: \"10.0.0.1/8\"", path2);
        parse_fail(spec, expect);

        assert(unlink(path) == 0 && unlink(path2) == 0 && rmdir(dir) == 0);
}

static void test_speed(void) {
        /* A realistic list; matching runs once per connection, so this only guards against something
         * pathological (the loop below takes a few milliseconds). */
        _cleanup_(netlist_freep) NetList *l =
                parse_ok("127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128 10.0.0.0/8 172.16.0.0/12 "
                         "192.168.0.0/16 2001:db8::/32 fd00::/8");
        struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
        assert(inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr) == 1);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        unsigned hits = 0;
        for (int i = 0; i < 1000000; i++)
                hits += netlist_match(l, (struct sockaddr *) &in6);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert(hits == 0);
        double s = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
        printf("1000000 non-matching lookups in %.3f s\n", s);
        assert(s < 2.0);
}

int main(void) {
        test_default();
        test_forms();
        test_broken();
        test_file();
        test_speed();
        return 0;
}
