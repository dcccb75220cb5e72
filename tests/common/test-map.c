/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/map.h"

static char dir[] = "/tmp/test-map-XXXXXX";

static char *path_in(const char *name) {
        char *p;
        assert(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static void write_file(const char *path, const char *text, size_t len) {
        FILE *f = fopen(path, "we");
        assert(f);
        assert(fwrite(text, 1, len, f) == len);
        assert(fclose(f) == 0);
}

static void expect(Map *m, const char *key, const char *value) {
        _cleanup_free_ char *v = NULL;
        int r = map_lookup(m, key, &v);
        if (!value) {
                assert(r == 0);
                assert(!v);
                return;
        }
        if (r != 1 || !streq(v, value))
                fprintf(stderr, "lookup %s: %d [%s], want [%s]\n", key, r, strempty(v), value);
        assert(r == 1);
        assert(streq(v, value));
}

static void test_ref(void) {
        _cleanup_free_ char *t = NULL, *p = NULL, *db = NULL;

        assert(map_ref_parse("hash:/etc/aliases", &t, &p) == 0);
        assert(streq(t, "gdbm") && streq(p, "/etc/aliases"));
        free(t), free(p);
        assert(map_ref_parse("GDBM:/x", &t, &p) == 0);
        assert(streq(t, "gdbm") && streq(p, "/x"));
        free(t), free(p);
        assert(map_ref_parse("btree:rel/x", &t, &p) == 0);
        assert(streq(t, "gdbm") && streq(p, "rel/x"));
        free(t), free(p);
        assert(map_ref_parse("/etc/virtual", &t, &p) == 0);
        assert(streq(t, "gdbm") && streq(p, "/etc/virtual"));
        free(t), free(p);
        assert(map_ref_parse("/etc/a:b", &t, &p) == 0);   /* a path starting with '/' is never split */
        assert(streq(t, "gdbm") && streq(p, "/etc/a:b"));
        free(t), free(p);
        t = p = NULL;
        assert(map_ref_parse("ldap:/etc/ldap.cf", &t, &p) == -EOPNOTSUPP);
        assert(map_ref_parse("cidr:/etc/x", &t, &p) == -EOPNOTSUPP);
        assert(!t && !p);
        assert(map_ref_parse("hash:", &t, &p) == -EINVAL);
        assert(map_ref_parse(":x", &t, &p) == -EINVAL);
        assert(map_ref_parse("", &t, &p) == -EINVAL);
        assert(map_ref_parse("ha sh:/x", &t, &p) == -EINVAL);
        assert(map_ref_db_path("hash:/etc/aliases", &db) == 0);
        assert(streq(db, "/etc/aliases.db"));
}

static void collect(const char *m, void *userdata) {
        char **w = userdata;
        free(*w);
        *w = strdup(m);
}

static int count_cb(const char *k, const char *v, void *userdata) {
        (*(int *) userdata)++;
        return 0;
}

static void test_build_lookup(void) {
        _cleanup_free_ char *src = path_in("virtual"), *ref = NULL, *db = NULL, *err = NULL, *warn = NULL;
        _cleanup_(map_freep) Map *m = NULL;
        const char text[] =
                "# comment\n"
                "\n"
                "Alice@Example.ORG   alice\n"
                "bob@example.org bob@remote.example,\r\n"
                "   carol@example.org\r\n"
                "  # comment inside\n"
                "@example.net\tcatchall\n"
                "alice@example.org duplicate\n"
                "tab\tvalue with  inner   spaces   \n";
        int n = 0;

        assert(asprintf(&ref, "hash:%s", src) > 0);
        write_file(src, text, sizeof(text) - 1);
        assert(map_build_full(ref, MAP_SYNTAX_POSTMAP, collect, &warn, &err) == 0);
        assert(!err);
        assert(warn && strstr(warn, ":8: duplicate entry \"alice@example.org\""));

        assert(map_open(ref, &m) == 0);
        assert(streq(map_name(m), ref));
        expect(m, "alice@example.org", "alice");           /* the first of two duplicates */
        expect(m, "ALICE@EXAMPLE.ORG", "alice");           /* keys fold to lower case */
        expect(m, "bob@example.org", "bob@remote.example, carol@example.org");
        expect(m, "@example.net", "catchall");
        expect(m, "tab", "value with  inner   spaces");
        expect(m, "nobody@example.org", NULL);
        expect(m, "", NULL);
        assert(map_lookup(m, "alice@example.org", NULL) == 1);
        assert(map_iterate(m, count_cb, &n) == 0);
        assert(n == 4);

        /* A long key goes through the heap path of map_lookup. */
        char longkey[600];
        memset(longkey, 'K', sizeof(longkey) - 1);
        longkey[sizeof(longkey) - 1] = 0;
        expect(m, longkey, NULL);

        assert(map_ref_db_path(ref, &db) == 0);
        assert(access(db, F_OK) == 0);
}

/* Short entries make a map many times its source: the writer's first reservation runs out and it
 * must reserve again. Every entry must be found, nothing more, and the file cut to what it uses. */
static void test_build_outgrows_reservation(void) {
        _cleanup_free_ char *src = path_in("many"), *db = NULL, *text = NULL;
        _cleanup_(map_freep) Map *m = NULL;
        const unsigned n = 200000;
        size_t len = 0, size = (size_t) n * 16;
        struct stat st_src, st_db;
        int count = 0;
        char key[32], value[32];

        text = malloc(size);
        assert(text);
        for (unsigned i = 0; i < n; i++)
                len += (size_t) snprintf(text + len, size - len, "%x %x\n", i, i % 7);
        write_file(src, text, len);
        assert(map_build(src, MAP_SYNTAX_POSTMAP, NULL) == 0);

        assert(map_ref_db_path(src, &db) == 0);
        assert(stat(src, &st_src) == 0);
        assert(stat(db, &st_db) == 0);
        assert(st_db.st_size > 3 * st_src.st_size);                 /* it did outgrow the first reservation */
        assert(st_db.st_blocks * 512 <= st_db.st_size + (1 << 20));  /* and no unused room stays allocated */

        assert(map_open(src, &m) == 0);
        for (unsigned i = 0; i < n; i += 997) {
                snprintf(key, sizeof(key), "%x", i);
                snprintf(value, sizeof(value), "%x", i % 7);
                expect(m, key, value);
        }
        expect(m, "-1", NULL);
        expect(m, "", NULL);
        assert(map_iterate(m, count_cb, &count) == 0);
        assert(count == (int) n);
}

static void expect_build_error(const char *text, size_t len, const char *want) {
        _cleanup_free_ char *src = path_in("broken"), *db = NULL, *err = NULL, *before = NULL;
        _cleanup_(map_freep) Map *m = NULL;
        struct stat st1, st2;

        /* A good map first; the broken source must leave it untouched. */
        write_file(src, "good value\n", 11);
        assert(map_build(src, MAP_SYNTAX_POSTMAP, NULL) == 0);
        assert(map_ref_db_path(src, &db) == 0);
        assert(stat(db, &st1) == 0);

        write_file(src, text, len);
        assert(map_build(src, MAP_SYNTAX_POSTMAP, &err) == -EINVAL);
        if (!err || !strstr(err, want))
                fprintf(stderr, "error [%s], want [%s]\n", strempty(err), want);
        assert(err && strstr(err, want));
        assert(strncmp(err, src, strlen(src)) == 0);

        assert(stat(db, &st2) == 0);
        assert(st1.st_ino == st2.st_ino);
        assert(map_open(src, &m) == 0);
        expect(m, "good", "value");

        /* No temporary file is left behind. */
        _cleanup_free_ char *cmd = NULL;
        assert(asprintf(&cmd, "ls %s | grep -q tmp", dir) > 0);
        assert(system(cmd) != 0);
}

static void test_build_errors(void) {
        expect_build_error("a b\nlonely\nc d\n", 14, ":2: missing value for key \"lonely\"");
        expect_build_error("  cont\na b\n", 11, ":1: continuation line without an entry");
        expect_build_error("a b\nc d\0e\n", 10, ":2: NUL byte");
        expect_build_error("a b\nc d\x01\n", 9, ":2: control character");
}

static void test_lists(void) {
        _cleanup_free_ char *a = path_in("one"), *b = path_in("two"), *empty = path_in("empty"),
                *missing = path_in("missing"), *spec = NULL, *v = NULL;
        _cleanup_(maplist_freep) MapList *l = NULL;
        MapList *l2 = NULL;

        write_file(a, "k from-one\n", 11);
        write_file(b, "k from-two\nonly-two yes\n", 24);
        write_file(empty, "", 0);
        assert(map_build(a, MAP_SYNTAX_POSTMAP, NULL) == 0);
        assert(map_build(b, MAP_SYNTAX_POSTMAP, NULL) == 0);

        /* An empty source that was never compiled is an empty map. */
        assert(asprintf(&spec, "hash:%s, gdbm:%s hash:%s", empty, a, b) > 0);
        assert(maplist_open(spec, &l) == 0);
        assert(maplist_size(l) == 2);
        assert(maplist_get(l, 0) && !maplist_get(l, 2));
        assert(maplist_lookup(l, "K", &v) == 1);
        assert(streq(v, "from-one"));
        free(v);
        v = NULL;
        assert(maplist_lookup(l, "only-two", &v) == 1);
        assert(streq(v, "yes"));
        assert(maplist_lookup(l, "none", NULL) == 0);

        free(spec);
        assert(asprintf(&spec, "hash:%s hash:%s", a, missing) > 0);
        assert(maplist_open(spec, &l2) == -ENOENT);
        assert(!l2);
        assert(maplist_open("ldap:/x", &l2) == -EOPNOTSUPP);
        assert(maplist_open("", &l2) == 0);
        assert(maplist_size(l2) == 0);
        assert(maplist_lookup(l2, "x", NULL) == 0);
        maplist_free(l2);
        assert(maplist_open(NULL, &l2) == 0);
        maplist_free(l2);

        /* A file that is not a map is an error, never "not found". */
        _cleanup_(map_freep) Map *m = NULL;
        _cleanup_free_ char *junk = path_in("junk"), *junkdb = path_in("junk.db");
        write_file(junkdb, "this is not gdbm\n", 17);
        assert(map_open(junk, &m) < 0);
        assert(!m);
}

int main(void) {
        assert(mkdtemp(dir));
        test_ref();
        test_build_lookup();
        test_build_outgrows_reservation();
        test_build_errors();
        test_lists();
        _cleanup_free_ char *cmd = NULL;
        assert(asprintf(&cmd, "rm -rf %s", dir) > 0);
        assert(system(cmd) == 0);
        printf("test-map: ok\n");
        return 0;
}
