/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alias.h"
#include "common/macro.h"
#include "common/strv.h"

static int collect(const char *name, const char *value, unsigned line, void *userdata) {
        char ***l = userdata;
        char *s;
        assert(asprintf(&s, "%u|%s|%s", line, name, value) > 0);
        assert(strv_push(l, s) == 0);
        return 0;
}

static void test_good(void) {
        const char text[] =
                "# Aliases\n"
                "postmaster: root\n"
                "root:\talice, bob@example.org\r\n"
                "\n"
                "list: alice,\n"
                "  bob,\n"
                "\tcarol  # kept: trailing text is part of the value as in Postfix\n"
                "  # a comment between continuation lines\n"
                "\"with space\": alice\n"
                "\"quo\\\"te\" : bob\n"
                "prog: \"|/usr/bin/foo -x\", |/bin/true\n"
                "file: /var/log/mail-copy\n"
                "inc: :include:/etc/mta/list.inc\n"
                "Upper: \\alice\n";
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *err = NULL;

        assert(alias_parse_buffer("aliases", text, sizeof(text) - 1, collect, &l, &err) == -EINVAL);
        /* "carol  # kept..." contains spaces in an address: a missing comma, so an error. */
        assert(err && streq(err, "aliases:5: alias \"list\": white space inside an address (missing ','?)"));
}

static void test_good2(void) {
        const char text[] =
                "# Aliases\n"
                "postmaster: root\n"
                "root:\talice, bob@example.org\r\n"
                "\n"
                "list: alice,\n"
                "  bob,\n"
                "\tcarol\n"
                "  # a comment between continuation lines\n"
                "\"with space\": alice\n"
                "\"quo\\\"te\" : bob\n"
                "prog: \"|/usr/bin/foo -x\", |/bin/true\n"
                "file: /var/log/mail-copy\n"
                "inc: :include:/etc/mta/list.inc\n"
                "Upper: \\alice, \"a b\"@example.org";
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *err = NULL;
        const char *want[] = {
                "2|postmaster|root",
                "3|root|alice, bob@example.org",
                "5|list|alice, bob, carol",
                "9|with space|alice",
                "10|quo\"te|bob",
                "11|prog|\"|/usr/bin/foo -x\", |/bin/true",
                "12|file|/var/log/mail-copy",
                "13|inc|:include:/etc/mta/list.inc",
                "14|Upper|\\alice, \"a b\"@example.org",
        };

        assert(alias_parse_buffer("aliases", text, sizeof(text) - 1, collect, &l, &err) == 0);
        assert(!err);
        assert(strv_length(l) == ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                if (!streq(l[i], want[i]))
                        fprintf(stderr, "entry %zu: [%s], want [%s]\n", i, l[i], want[i]);
                assert(streq(l[i], want[i]));
        }
}

static void expect_error(const char *text, size_t len, const char *want) {
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *err = NULL;
        int r = alias_parse_buffer("/etc/aliases", text, len, collect, &l, &err);

        if (r != -EINVAL || !err || !streq(err, want))
                fprintf(stderr, "[%s]: %d [%s], want [%s]\n", text, r, strempty(err), want);
        assert(r == -EINVAL);
        assert(streq(err, want));
}

static void test_errors(void) {
        expect_error("a: b\nnocolon\n", 13, "/etc/aliases:2: missing ':' after alias name");
        expect_error("a: b\nname value\n", 16, "/etc/aliases:2: missing ':' after alias name");
        expect_error("a:\n", 3, "/etc/aliases:1: missing value for alias \"a\"");
        expect_error("a:   \n# x\nb: c\n", 15, "/etc/aliases:1: missing value for alias \"a\"");
        expect_error(" b\na: c\n", 8, "/etc/aliases:1: continuation line without an entry above it");
        expect_error("# c\n\n  x: y\n", 11, "/etc/aliases:3: continuation line without an entry above it");
        expect_error("a: b\nc: d\0\n", 10, "/etc/aliases:2: NUL byte in line");
        expect_error(": b\n", 4, "/etc/aliases:1: empty alias name");
        expect_error("\"a: b\n", 6, "/etc/aliases:1: unbalanced '\"' in alias name");
        expect_error("a: \"|cmd\n", 9, "/etc/aliases:1: alias \"a\": unbalanced '\"'");
        expect_error("a: b, |\n", 8, "/etc/aliases:1: alias \"a\": empty command after '|'");
        expect_error("a: :include:\n", 13, "/etc/aliases:1: alias \"a\": empty path after ':include:'");
        expect_error("a: :include:rel\n", 16, "/etc/aliases:1: alias \"a\": ':include:' needs an absolute path");
        expect_error("a: ,, ,\n", 8, "/etc/aliases:1: alias \"a\": no targets");
        expect_error("a: b\nc: d\x01\n", 10, "/etc/aliases:2: alias \"c\": control character in target");
        expect_error("a: b\nc: d,\n  e f\n", 17, "/etc/aliases:2: alias \"c\": white space inside an address (missing ','?)");
}

static void test_split(void) {
        AliasTarget *t = NULL;
        size_t n = 0;

        assert(alias_split_targets("alice, \"|/usr/bin/foo -x, y\" , /var/f,:INCLUDE: /etc/l, |cmd arg,"
                                   "\"a b\"@example.org, \"/path with space\", \\bob", &t, &n) == 0);
        assert(n == 8);
        assert(t[0].kind == ALIAS_TARGET_ADDRESS && streq(t[0].value, "alice"));
        assert(t[1].kind == ALIAS_TARGET_COMMAND && streq(t[1].value, "/usr/bin/foo -x, y"));
        assert(t[2].kind == ALIAS_TARGET_FILE && streq(t[2].value, "/var/f"));
        assert(t[3].kind == ALIAS_TARGET_INCLUDE && streq(t[3].value, "/etc/l"));
        assert(t[4].kind == ALIAS_TARGET_COMMAND && streq(t[4].value, "cmd arg"));
        assert(t[5].kind == ALIAS_TARGET_ADDRESS && streq(t[5].value, "\"a b\"@example.org"));
        assert(t[6].kind == ALIAS_TARGET_FILE && streq(t[6].value, "/path with space"));
        assert(t[7].kind == ALIAS_TARGET_ADDRESS && streq(t[7].value, "\\bob"));
        alias_targets_free(t, n);

        t = NULL;
        assert(alias_split_targets("\"unbalanced", &t, &n) == -EINVAL);
        assert(alias_split_targets("", &t, &n) == -EINVAL);
        assert(!t);
}

static void test_file(void) {
        char path[] = "/tmp/test-alias-XXXXXX";
        _cleanup_strv_free_ char **l = NULL;
        _cleanup_free_ char *err = NULL;
        int fd = mkstemp(path);

        assert(fd >= 0);
        assert(write(fd, "x: y\n", 5) == 5);
        close(fd);
        assert(alias_parse_file(path, collect, &l, &err) == 0);
        assert(strv_length(l) == 1 && streq(l[0], "1|x|y"));
        unlink(path);
        assert(alias_parse_file(path, collect, &l, &err) == -ENOENT);
        assert(err && strstr(err, path));
}

int main(void) {
        test_good();
        test_good2();
        test_errors();
        test_split();
        test_file();
        printf("test-alias: ok\n");
        return 0;
}
