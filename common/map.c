/* SPDX-License-Identifier: MIT */
/*
 * Map references, the method table, map lists, and the map compiler. The compiler writes entries
 * straight into a temporary file while it checks the source, and only renames that file over the
 * old map when every line was good; any error unlinks it, so the old map stays as it was.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alias.h"
#include "common/map-backend.h"
#include "common/map.h"
#include "common/strv.h"

struct MapList {
        Map **maps;
        size_t n;
};

/* Postfix's names for Berkeley DB files all mean our native file here. */
static const char *const gdbm_aliases[] = { "gdbm", "hash", "btree", "dbm" };

static const MapOps *map_ops_find(const char *type) {
        for (size_t i = 0; i < ELEMENTSOF(gdbm_aliases); i++)
                if (streq(type, gdbm_aliases[i]))
                        return &map_gdbm_ops;
        return NULL;
}

int map_ref_parse(const char *ref, char **ret_type, char **ret_path) {
        _cleanup_free_ char *type = NULL, *path = NULL;
        const char *colon;

        if (isempty(ref))
                return -EINVAL;

        /* "type:path"; a reference that starts with '/' or has no ':' is a path of the native type. */
        colon = strchr(ref, ':');
        if (ref[0] != '/' && colon) {
                for (const char *p = ref; p < colon; p++)
                        if (!isalnum((unsigned char) *p) && *p != '_' && *p != '-')
                                return -EINVAL;
                if (colon == ref)
                        return -EINVAL;
                type = strndup(ref, (size_t) (colon - ref));
                if (!type)
                        return -ENOMEM;
                ascii_strlower(type);
                if (!map_ops_find(type))
                        return -EOPNOTSUPP;
                path = strdup(colon + 1);
        } else
                path = strdup(ref);
        if (!path)
                return -ENOMEM;
        if (!*path || string_has_cc(path))
                return -EINVAL;

        if (ret_type) {
                char *t = strdup(map_ops_find(type ? type : "gdbm")->type);
                if (!t)
                        return -ENOMEM;
                *ret_type = t;
        }
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

int map_ref_db_path(const char *ref, char **ret) {
        _cleanup_free_ char *path = NULL;
        char *db;
        int r;

        r = map_ref_parse(ref, NULL, &path);
        if (r < 0)
                return r;
        if (asprintf(&db, "%s.db", path) < 0)
                return -ENOMEM;
        *ret = db;
        return 0;
}

Map *map_free(Map *m) {
        if (!m)
                return NULL;
        if (m->ops)
                m->ops->close(m);
        free(m->name);
        free(m->db_path);
        free(m);
        return NULL;
}

int map_open(const char *ref, Map **ret) {
        _cleanup_free_ char *type = NULL, *db_path = NULL, *name = NULL;
        const MapOps *ops;
        Map *m = NULL;
        int r;

        r = map_ref_parse(ref, &type, NULL);
        if (r < 0)
                return r;
        r = map_ref_db_path(ref, &db_path);
        if (r < 0)
                return r;
        name = strdup(ref);
        if (!name)
                return -ENOMEM;

        ops = map_ops_find(type);
        r = ops->open(db_path, &m);
        if (r < 0)
                return r;
        m->ops = ops;
        m->name = TAKE_PTR(name);
        m->db_path = TAKE_PTR(db_path);
        *ret = m;
        return 0;
}

const char *map_name(const Map *m) {
        return m->name;
}

int map_lookup(Map *m, const char *key, char **ret_value) {
        char stack[256], *buf = stack;
        size_t len = strlen(key);
        char *value = NULL;
        int r;

        /* Lookups are hot (every recipient, several keys each): fold into a stack buffer. */
        if (len >= sizeof(stack)) {
                buf = malloc(len + 1);
                if (!buf)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < len; i++)
                buf[i] = (char) tolower((unsigned char) key[i]);
        buf[len] = 0;

        r = len == 0 ? 0 : m->ops->lookup(m, buf, len, &value);
        if (buf != stack)
                free(buf);
        if (r > 0) {
                if (ret_value)
                        *ret_value = value;
                else
                        free(value);
        }
        return r;
}

int map_iterate(Map *m, map_iterate_cb cb, void *userdata) {
        return m->ops->iterate(m, cb, userdata);
}

MapList *maplist_free(MapList *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n; i++)
                map_free(l->maps[i]);
        free(l->maps);
        free(l);
        return NULL;
}

static bool source_is_empty(const char *ref) {
        _cleanup_free_ char *path = NULL;
        struct stat st;

        if (map_ref_parse(ref, NULL, &path) < 0)
                return false;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

int maplist_open(const char *spec, MapList **ret) {
        _cleanup_(maplist_freep) MapList *l = NULL;
        _cleanup_strv_free_ char **refs = NULL;
        int r;

        r = strv_split_list(strempty(spec), &refs);
        if (r < 0)
                return r;
        l = calloc(1, sizeof(MapList));
        if (!l)
                return -ENOMEM;
        l->maps = calloc(strv_length(refs) + 1, sizeof(Map *));
        if (!l->maps)
                return -ENOMEM;

        for (char **i = refs; *i; i++) {
                Map *m;

                r = map_open(*i, &m);
                /* An empty source file that was never compiled is an empty map, not an error: the
                 * answer is the same and a fresh install need not run mta-map on empty files. */
                if (r == -ENOENT && source_is_empty(*i))
                        continue;
                if (r < 0)
                        return r;
                l->maps[l->n++] = m;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int maplist_lookup(MapList *l, const char *key, char **ret_value) {
        for (size_t i = 0; l && i < l->n; i++) {
                int r = map_lookup(l->maps[i], key, ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}

size_t maplist_size(const MapList *l) {
        return l ? l->n : 0;
}

Map *maplist_get(const MapList *l, size_t i) {
        return l && i < l->n ? l->maps[i] : NULL;
}

static bool has_cc_but_tab(const char *s) {
        for (; *s; s++)
                if (((unsigned char) *s < 0x20 && *s != '\t') || *s == 0x7f)
                        return true;
        return false;
}

typedef struct BuildState {
        MapWriter *w;
        const char *file;
        map_warning_cb warn;
        void *userdata;
        char *key;
        size_t key_size;
} BuildState;

static int build_add(BuildState *b, const char *key, size_t key_len, const char *value, unsigned line) {
        int r;

        if (key_len + 1 > b->key_size) {
                size_t sz = key_len + 64;
                char *k = realloc(b->key, sz);
                if (!k)
                        return -ENOMEM;
                b->key = k;
                b->key_size = sz;
        }
        for (size_t i = 0; i < key_len; i++)
                b->key[i] = (char) tolower((unsigned char) key[i]);
        b->key[key_len] = 0;

        r = map_gdbm_writer_add(b->w, b->key, key_len, value, strlen(value));
        if (r < 0)
                return r;
        if (r > 0 && b->warn) {
                _cleanup_free_ char *msg = NULL;
                /* As Postfix's postmap and postalias: the first entry stays, later ones are reported. */
                if (asprintf(&msg, "%s:%u: duplicate entry \"%s\" ignored, the first one is kept",
                             b->file, line, b->key) < 0)
                        return -ENOMEM;
                b->warn(msg, b->userdata);
        }
        return 0;
}

static int alias_entry_add(const char *name, const char *value, unsigned line, void *userdata) {
        return build_add(userdata, name, strlen(name), value, line);
}

static int build_postmap(BuildState *b, const char *buf, size_t len, char **ret_error) {
        SourceReader s;
        int r;

        source_reader_init(&s, b->file, buf, len);
        for (;;) {
                char *text, *value;
                unsigned line;
                size_t k;

                r = source_reader_next(&s, &text, &line, ret_error);
                if (r <= 0)
                        break;

                k = strcspn(text, " \t");
                value = text + k;
                while (*value == ' ' || *value == '\t')
                        value++;
                if (!*value) {
                        r = error_set(ret_error, -EINVAL, "%s:%u: missing value for key \"%.*s\"",
                                      b->file, line, (int) k, text);
                        break;
                }
                if (has_cc_but_tab(value)) {
                        r = error_set(ret_error, -EINVAL, "%s:%u: control character in value", b->file, line);
                        break;
                }
                r = build_add(b, text, k, value, line);
                if (r < 0) {
                        error_set(ret_error, r, "%s:%u: cannot store \"%.*s\": %s", b->file, line, (int) k,
                                  text, strerror(-r));
                        break;
                }
        }
        source_reader_done(&s);
        return r;
}

int map_build_full(const char *ref, MapSyntax syntax, map_warning_cb warn, void *userdata, char **ret_error) {
        _cleanup_(map_gdbm_writer_abortp) MapWriter *w = NULL;
        _cleanup_free_ char *path = NULL, *db_path = NULL, *buf = NULL, *key = NULL;
        _cleanup_close_ int fd = -EBADF;
        BuildState b = {};
        size_t len;
        int r;

        r = map_ref_parse(ref, NULL, &path);
        if (r == -EOPNOTSUPP)
                return error_set(ret_error, r, "%s: unsupported map type (supported: gdbm, hash, btree)", ref);
        if (r < 0)
                return error_set(ret_error, r, "%s: invalid map reference", ref);
        r = map_ref_db_path(ref, &db_path);
        if (r < 0)
                return r;

        r = read_source_file(path, &buf, &len, &fd);
        if (r < 0)
                return error_set(ret_error, r, "%s: %s", path, strerror(-r));

        r = map_gdbm_writer_new(db_path, fd, &w);
        if (r < 0)
                return error_set(ret_error, r, "%s: cannot create temporary map: %s", db_path, strerror(-r));

        b = (BuildState) { .w = w, .file = path, .warn = warn, .userdata = userdata };
        if (syntax == MAP_SYNTAX_ALIASES)
                r = alias_parse_buffer(path, buf, len, alias_entry_add, &b, ret_error);
        else
                r = build_postmap(&b, buf, len, ret_error);
        key = b.key;
        if (r < 0) {
                if (ret_error && !*ret_error)
                        error_set(ret_error, r, "%s: %s", path, strerror(-r));
                return r;   /* the cleanup unlinks the temporary file: the old map stays */
        }

        r = map_gdbm_writer_commit(w);
        if (r < 0)
                return error_set(ret_error, r, "%s: cannot install map: %s", db_path, strerror(-r));
        return 0;
}

int map_build(const char *ref, MapSyntax syntax, char **ret_error) {
        return map_build_full(ref, syntax, NULL, NULL, ret_error);
}

const char *map_db_path(const Map *m) {
        return m->db_path;
}
