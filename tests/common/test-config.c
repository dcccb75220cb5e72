/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/params.h"
#include "common/strv.h"

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static void write_cf(const char *data, size_t len) {
        char path[256];
        snprintf(path, sizeof path, "%s/main.cf", tmpdir);
        (void) unlink(path);
        (void) rmdir(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert(fd >= 0);
        assert(write(fd, data, len) == (ssize_t) len);
        close(fd);
}

static Config *load_ok(const char *text) {
        Config *c = NULL;
        char *err = NULL;
        write_cf(text, strlen(text));
        int r = config_load(tmpdir, &c, &err);
        if (r < 0)
                fprintf(stderr, "unexpected error: %s\n", err);
        assert(r == 0);
        assert(!err);
        return c;
}

static void load_fail(const char *text, size_t len, int expect_r, const char *expect_msg) {
        Config *c = NULL;
        char *err = NULL;
        write_cf(text, len);
        int r = config_load(tmpdir, &c, &err);
        assert(r == expect_r);
        assert(!c);
        assert(err);
        if (!strstr(err, expect_msg)) {
                fprintf(stderr, "error '%s' lacks '%s'\n", err, expect_msg);
                abort();
        }
        free(err);
}

static void test_basic(void) {
        _cleanup_(config_freep) Config *c = load_ok(
                "# comment\n"
                "myhostname=mx.example.org\n"
                "   # indented comment\n"
                "\n"
                "mydomain   =    example.org   \n"
                "mynetworks = 10.0.0.0/8,\n"
                "    192.168.0.0/16\n"
                "# comment between continuation lines\n"
                "\t[::1]/128\n"
                "relayhost =\n"
                "message_size_limit = 100\n"
                "message_size_limit = 200\n"
                "my_own = x\n");

        assert(streq(config_get_raw(c, "myhostname"), "mx.example.org"));
        assert(streq(config_get_raw(c, "mydomain"), "example.org"));
        assert(streq(config_get_raw(c, "mynetworks"), "10.0.0.0/8, 192.168.0.0/16 [::1]/128"));
        assert(streq(config_get_raw(c, "relayhost"), ""));
        assert(config_is_set(c, "relayhost"));
        assert(!config_is_set(c, "myorigin"));
        assert(streq(config_get_raw(c, "message_size_limit"), "200"));
        assert(config_line_of(c, "message_size_limit") == 12);
        assert(config_line_of(c, "mynetworks") == 6);
        assert(config_line_of(c, "myorigin") == 0);
        assert(streq(config_get(c, "myorigin"), "mx.example.org"));
        assert(streq(config_get(c, "mydestination"), "mx.example.org, localhost.example.org, localhost"));
        assert(streq(config_get(c, "smtpd_banner"), "mx.example.org ESMTP mta"));
        assert(config_get(c, "no_such_parameter") == NULL);
        assert(config_get_raw(c, "no_such_parameter") == NULL);
        assert(streq(config_get(c, "my_own"), "x"));

        uint64_t u;
        assert(config_get_size(c, "message_size_limit", &u) == 0 && u == 200);
        assert(config_get_size(c, "mailbox_size_limit", &u) == 0 && u == 51200000);
        assert(config_get_time(c, "maximal_queue_lifetime", &u) == 0 && u == 5 * 86400);
        assert(config_get_time(c, "minimal_backoff_time", &u) == 0 && u == 300);
        assert(config_get_size(c, "nope", &u) == -ENOENT);
        int64_t i;
        assert(config_get_int(c, "smtpd_recipient_limit", &i) == 0 && i == 1000);
        assert(config_get_int(c, "smtp_destination_concurrency_limit", &i) == 0 && i == 20);
        bool b;
        assert(config_get_bool(c, "smtpd_delay_reject", &b) == 0 && b);
        assert(config_get_bool(c, "biff", &b) == 0 && !b);

        char **l = NULL;
        assert(config_get_list(c, "mynetworks", &l) == 0);
        assert(strv_length(l) == 3 && streq(l[2], "[::1]/128"));
        l = strv_free(l);
        assert(config_get_list(c, "virtual_alias_maps", &l) == 0 && strv_length(l) == 0);
        l = strv_free(l);

        char **unk = NULL;
        unsigned *lines = NULL;
        assert(config_unknown(c, &unk, &lines) == 0);
        assert(strv_length(unk) == 1 && streq(unk[0], "my_own") && lines[0] == 13);
        unk = strv_free(unk);
        free(lines);

        assert(config_set_names(c, &l) == 0);
        assert(strv_length(l) == 6 && streq(l[0], "myhostname") && streq(l[5], "my_own"));
        l = strv_free(l);

        /* config_set overrides and invalidates expansions. */
        assert(config_set(c, "myhostname", "other.example") == 0);
        assert(streq(config_get(c, "myorigin"), "other.example"));
        assert(config_set(c, "bad name", "x") == -EINVAL);
}

static void test_expand(void) {
        _cleanup_(config_freep) Config *c = load_ok(
                "a = A\n"
                "empty =\n"
                "b = ${a}-$a-$(a)\n"
                "c = ${a?yes}${empty?no}${a:no}${empty:fallback $a}\n"
                "d = cost $$5 and $$a\n"
                "e = $undefined_thing|${undefined_thing}|\n"
                "f = $ lonely $, ${not closed\n"
                "g = ${a?{nested} $b}\n"
                "h = ${a?{x}:{y}}|${empty?{x}:{y}}|${a:{x}}|${empty:{x, $a}}|${a?{}:{z}}|${a ? {x}}\n"
                "i = ${a?{x} : {y}}|${empty?{$$a}:{${a}}}|${a:{x}:{y}}\n"
                "loop1 = x $loop2\n"
                "loop2 = y $loop1\n"
                "self = $self z\n"
                "big0 = 0123456789012345678901234567890123456789\n");
        assert(streq(config_get(c, "b"), "A-A-A"));
        assert(streq(config_get(c, "c"), "yesfallback A"));
        assert(streq(config_get(c, "d"), "cost $5 and $a"));
        assert(streq(config_get(c, "e"), "||"));
        assert(streq(config_get(c, "f"), "$ lonely $, ${not closed"));
        assert(streq(config_get(c, "g"), "{nested} A-A-A"));
        assert(streq(config_get(c, "h"), "x|y||x, A||${a ? {x}}"));
        assert(streq(config_get(c, "i"), "x|A|${a:{x}:{y}}"));
        assert(streq(config_get(c, "loop1"), "x y "));
        assert(streq(config_get(c, "loop2"), "y x "));
        assert(streq(config_get(c, "self"), " z"));

        char *s = NULL;
        assert(config_expand(c, "<$a$b>", &s) == 0 && streq(s, "<AA-A-A>"));
        free(s);

        /* Deep recursion: a chain longer than the depth limit is cut, not followed to the end. */
        for (int k = 0; k < 300; k++) {
                char n[32], v[32];
                snprintf(n, sizeof n, "deep%d", k);
                snprintf(v, sizeof v, "$deep%d", k + 1);
                assert(config_set(c, n, v) == 0);
        }
        assert(config_set(c, "deep300", "bottom") == 0);
        assert(streq(config_get(c, "deep0"), ""));
        assert(streq(config_get(c, "deep250"), "bottom"));

        /* Doubling: every level doubles the text; the size cap stops it. */
        for (int k = 0; k < 40; k++) {
                char n[32], v[32];
                snprintf(n, sizeof n, "big%d", k + 1);
                snprintf(v, sizeof v, "$big%d$big%d", k, k);
                assert(config_set(c, n, v) == 0);
        }
        assert(streq(config_get(c, "big40"), ""));
        assert(config_expand(c, "$big40", &s) == -E2BIG);
        assert(strlen(config_get(c, "big10")) == 40 * 1024);
}

#define LOAD_FAIL(lit, r, msg) load_fail(lit, sizeof(lit) - 1, r, msg)

static void test_broken(void) {
        LOAD_FAIL("myhostname = a\nmynetworks 127.0.0.1\n", -EINVAL,
                  "main.cf:2: missing '=' after parameter name");
        LOAD_FAIL("foo bar = x\n", -EINVAL, "main.cf:1: missing '='");
        LOAD_FAIL("= value\n", -EINVAL, "main.cf:1: missing parameter name");
        LOAD_FAIL("  continued = x\nmyhostname = a\n", -EINVAL, "main.cf:1: continuation line");
        LOAD_FAIL("# c\n\n\t x = y\n", -EINVAL, "main.cf:3: continuation line");
        LOAD_FAIL("a = b\nc = d\0e\n", -EINVAL, "main.cf:2: NUL byte");

        /* main.cf that is a directory */
        char path[256];
        snprintf(path, sizeof path, "%s/main.cf", tmpdir);
        (void) unlink(path);
        assert(mkdir(path, 0755) == 0);
        Config *c = NULL;
        char *err = NULL;
        assert(config_load(tmpdir, &c, &err) == -EISDIR);
        assert(err && strstr(err, "is a directory"));
        free(err);
        assert(rmdir(path) == 0);

        /* missing main.cf */
        err = NULL;
        assert(config_load(tmpdir, &c, &err) == -ENOENT);
        assert(!c);
        free(err);

        /* A malformed typed value is reported by the typed getter, not by config_load. */
        _cleanup_(config_freep) Config *d = load_ok("message_size_limit = 10x\nsmtpd_timeout = 5y\n"
                                                   "biff = maybe\nsmtpd_recipient_limit = many\n");
        uint64_t u;
        int64_t i;
        bool b;
        assert(config_get_size(d, "message_size_limit", &u) == -EINVAL);
        assert(config_get_time(d, "smtpd_timeout", &u) == -EINVAL);
        assert(config_get_bool(d, "biff", &b) == -EINVAL);
        assert(config_get_int(d, "smtpd_recipient_limit", &i) == -EINVAL);
}

static void test_crlf_and_long(void) {
        _cleanup_(config_freep) Config *c = load_ok("myhostname = crlf.example\r\nmydomain = example\r\n"
                                                   "mynetworks = 10.0.0.0/8\r\n  10.1.0.0/16 \r\n\r\n");
        assert(streq(config_get_raw(c, "myhostname"), "crlf.example"));
        assert(streq(config_get_raw(c, "mynetworks"), "10.0.0.0/8 10.1.0.0/16"));

        size_t n = 1024 * 1024;
        char *big = malloc(n + 64);
        assert(big);
        strcpy(big, "smtpd_banner = ");
        size_t off = strlen(big);
        memset(big + off, 'x', n);
        strcpy(big + off + n, "\nmail_name = m\n");
        _cleanup_(config_freep) Config *d = load_ok(big);
        assert(strlen(config_get_raw(d, "smtpd_banner")) == n);
        assert(streq(config_get(d, "mail_name"), "m"));
        free(big);

        _cleanup_(config_freep) Config *bom = load_ok("\xef\xbb\xbfmyhostname = bom.example\n");
        assert(streq(config_get(bom, "myhostname"), "bom.example"));

        _cleanup_(config_freep) Config *e = load_ok("");
        assert(streq(config_get(e, "mail_name"), "mta"));

        /* mydomain follows the configured myhostname, as in Postfix. */
        _cleanup_(config_freep) Config *g = load_ok("myhostname = mx.example.org\n");
        assert(streq(config_get(g, "mydomain"), "example.org"));
        assert(streq(config_get(g, "mydestination"), "mx.example.org, localhost.example.org, localhost"));
        _cleanup_(config_freep) Config *h = load_ok("myhostname = single\n");
        assert(streq(config_get(h, "mydomain"), "localdomain"));
        _cleanup_(config_freep) Config *k = load_ok("myhostname = $mydomain\nmydomain = d.example\n");
        assert(streq(config_get(k, "myhostname"), "d.example"));
        /* myhostname refers to mydomain, whose default derives from myhostname: cut, not endless. */
        _cleanup_(config_freep) Config *m = load_ok("myhostname = a.$mydomain\n");
        const char *mh = config_get(m, "myhostname");
        assert(mh && strncmp(mh, "a.", 2) == 0);
        assert(config_get(m, "mydomain"));
        _cleanup_(config_freep) Config *m2 = load_ok("myhostname = a.$mydomain\n");
        assert(config_get(m2, "mydomain") && config_get(m2, "myorigin"));
        _cleanup_(config_freep) Config *f = load_ok("no_newline_at_end = 1");
        assert(streq(config_get(f, "no_newline_at_end"), "1"));
}

static void test_parsers(void) {
        uint64_t u;
        bool b;

        assert(config_parse_size("0", &u) == 0 && u == 0);
        assert(config_parse_size("10240000", &u) == 0 && u == 10240000);
        assert(config_parse_size("18446744073709551615", &u) == 0 && u == UINT64_MAX);
        u = 7;
        assert(config_parse_size("18446744073709551616", &u) == -ERANGE && u == 7);
        assert(config_parse_size("99999999999999999999999", &u) == -ERANGE);
        assert(config_parse_size("10x", &u) == -EINVAL);
        assert(config_parse_size("10k", &u) == -EINVAL);
        assert(config_parse_size("", &u) == -EINVAL);
        assert(config_parse_size("-1", &u) == -EINVAL);
        assert(config_parse_size(" 1", &u) == -EINVAL);
        assert(config_parse_size("1 ", &u) == -EINVAL);
        assert(u == 7);

        assert(config_parse_time("300s", 's', &u) == 0 && u == 300);
        assert(config_parse_time("300", 's', &u) == 0 && u == 300);
        assert(config_parse_time("5", 'd', &u) == 0 && u == 5 * 86400);
        assert(config_parse_time("5d", 's', &u) == 0 && u == 5 * 86400);
        assert(config_parse_time("2w", 's', &u) == 0 && u == 14 * 86400);
        assert(config_parse_time("1h", 's', &u) == 0 && u == 3600);
        assert(config_parse_time("3m", 's', &u) == 0 && u == 180);
        assert(config_parse_time("0", 'h', &u) == 0 && u == 0);
        assert(config_parse_time("1", 0, &u) == 0 && u == 1);
        u = 9;
        assert(config_parse_time("5x", 's', &u) == -EINVAL);
        assert(config_parse_time("5ss", 's', &u) == -EINVAL);
        assert(config_parse_time("s", 's', &u) == -EINVAL);
        assert(config_parse_time("", 's', &u) == -EINVAL);
        assert(config_parse_time("-5s", 's', &u) == -EINVAL);
        assert(config_parse_time("1.5h", 's', &u) == -EINVAL);
        assert(config_parse_time("40000000000000w", 's', &u) == -ERANGE);
        assert(u == 9);

        assert(config_parse_bool("yes", &b) == 0 && b);
        assert(config_parse_bool("YES", &b) == 0 && b);
        assert(config_parse_bool("No", &b) == 0 && !b);
        assert(config_parse_bool("true", &b) == -EINVAL);
        assert(config_parse_bool("1", &b) == -EINVAL);
        assert(config_parse_bool("", &b) == -EINVAL);
        assert(config_parse_bool("yes ", &b) == -EINVAL);
}

static void test_defaults(void) {
        _cleanup_(config_freep) Config *c = NULL;
        assert(config_new_defaults("/nonexistent", &c) == 0);
        assert(streq(config_dir(c), "/nonexistent"));
        assert(streq(config_path(c), "/nonexistent/main.cf"));

        const char *h = config_get(c, "myhostname");
        const char *d = config_get(c, "mydomain");
        assert(h && strchr(h, '.'));
        assert(d && *d);
        assert(streq(strchr(h, '.') + 1, d));
        assert(streq(config_get_raw(c, "mynetworks"), "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128"));
        assert(streq(config_get_raw(c, "alias_maps"), "hash:/etc/mta/aliases"));
        assert(streq(config_get(c, "virtual_alias_domains"), ""));
        assert(streq(config_get(c, "smtpd_tls_key_file"), ""));

        /* Every table default of a typed parameter parses. */
        for (size_t i = 0; i < params_table_size; i++) {
                const ParamInfo *p = &params_table[i];
                uint64_t u;
                int64_t n;
                bool b;
                assert(params_find(p->name) == p);
                assert(p->doc && *p->doc);
                switch (p->type) {
                case PARAM_BOOL:
                        assert(config_get_bool(c, p->name, &b) == 0);
                        break;
                case PARAM_SIZE:
                        assert(config_get_size(c, p->name, &u) == 0);
                        break;
                case PARAM_TIME:
                        assert(p->time_unit);
                        assert(config_get_time(c, p->name, &u) == 0);
                        break;
                case PARAM_INT:
                        assert(config_get_int(c, p->name, &n) == 0);
                        break;
                default:
                        break;
                }
                for (size_t j = i + 1; j < params_table_size; j++)
                        assert(!streq(p->name, params_table[j].name));
        }
        assert(params_find("nope") == NULL);
        assert(params_default("nope") == NULL);

        assert(streq(params_suggest("mynetwork"), "mynetworks"));
        assert(streq(params_suggest("mydestinaton"), "mydestination"));
        assert(streq(params_suggest("MyHostName"), "myhostname"));
        assert(streq(params_suggest("tls_cert_file"), "smtpd_tls_cert_file") ||
               streq(params_suggest("tls_cert_file"), "smtp_tls_cert_file"));
        assert(params_suggest("completely_unrelated_thing") == NULL);
        assert(params_suggest("") == NULL);

        setenv("MTA_CONFIG_DIR", "/from/env", 1);
        assert(streq(config_dir_default("/arg"), "/arg"));
        assert(streq(config_dir_default(NULL), "/from/env"));
        unsetenv("MTA_CONFIG_DIR");
        assert(streq(config_dir_default(NULL), MTA_DEFAULT_CONFIG_DIR));
}

/* Random text made of the characters the parser and the expander care about: nothing may crash, leak
 * or hang, whatever config_load() and config_get() make of it. */
static void test_random(void) {
        static const char alphabet[] = "ab_=$${}()?:# \t\r\n\n,";
        uint32_t seed = 12345;

        for (int iter = 0; iter < 3000; iter++) {
                char text[256];
                size_t len = (size_t) (iter % 200) + 1;
                for (size_t i = 0; i < len; i++) {
                        seed = seed * 1103515245u + 12345u;
                        text[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
                }
                text[len] = 0;
                Config *c = NULL;
                char *err = NULL;
                write_cf(text, len);
                int r = config_load(tmpdir, &c, &err);
                assert((r == 0) == (c != NULL));
                assert((r == 0) == (err == NULL));
                free(err);
                if (!c)
                        continue;
                char **names = NULL;
                assert(config_set_names(c, &names) == 0);
                for (char **n = names; *n; n++) {
                        assert(config_get(c, *n));
                        char *x = NULL;
                        int q = config_expand(c, config_get_raw(c, *n), &x);
                        assert(q == 0 || q == -E2BIG);
                        free(x);
                }
                strv_free(names);
                config_free(c);
        }
}

int main(void) {
        assert(mkdtemp(tmpdir));
        test_parsers();
        test_basic();
        test_expand();
        test_broken();
        test_crlf_and_long();
        test_defaults();
        test_random();
        char path[256];
        snprintf(path, sizeof path, "%s/main.cf", tmpdir);
        (void) unlink(path);
        (void) rmdir(tmpdir);
        return 0;
}
