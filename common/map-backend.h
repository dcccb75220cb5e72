/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Internal to map.c and its backends (map-gdbm.c): the method table every map type implements and
 * the common head of a Map. Backends receive keys already folded to lower case with their length;
 * lookup returns 1 and a malloc'ed NUL-terminated value, 0 when absent, negative errno on error.
 */

#include <stddef.h>

#include "common/map.h"

typedef struct MapOps {
        const char *type;
        int (*open)(const char *db_path, Map **ret);
        int (*lookup)(Map *m, const char *key, size_t key_len, char **ret_value);
        int (*iterate)(Map *m, map_iterate_cb cb, void *userdata);
        void (*close)(Map *m);
} MapOps;

struct Map {
        const MapOps *ops;
        char *name;         /* the reference as given, for messages */
        char *db_path;
        void *data;         /* backend state */
};

extern const MapOps map_gdbm_ops;

/* The builder side of the gdbm backend: entries go straight into a temporary file beside db_path
 * that map_gdbm_writer_commit() syncs and renames over db_path; abort unlinks it. */
typedef struct MapWriter MapWriter;
int map_gdbm_writer_new(const char *db_path, int source_fd, MapWriter **ret);
/* 0 stored, 1 duplicate (the first value is kept), negative errno on error. */
int map_gdbm_writer_add(MapWriter *w, const char *key, size_t key_len, const char *value, size_t value_len);
int map_gdbm_writer_commit(MapWriter *w);
MapWriter *map_gdbm_writer_abort(MapWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(MapWriter *, map_gdbm_writer_abort);

/*
 * Logical lines of a map or alias source, as Postfix reads them: '#' comment lines and blank lines
 * are skipped, a line that starts with white space continues the entry above (joined with one
 * space), a trailing CR is dropped. A continuation line before any entry and a NUL byte are errors.
 * Implemented in alias.c; used by map.c for the postmap syntax too.
 */
typedef struct SourceReader {
        const char *name;     /* file name for messages */
        const char *buf;
        size_t len;
        size_t pos;
        unsigned line;        /* line number at pos, 1-based */
        char *acc;            /* the current logical line */
        size_t acc_size;
} SourceReader;

void source_reader_init(SourceReader *s, const char *name, const char *buf, size_t len);
void source_reader_done(SourceReader *s);
/* 1 and the entry text (valid until the next call; may be modified) with the line it starts on, 0 at
 * the end, -EINVAL with *ret_error "FILE:LINE: what", -ENOMEM. */
int source_reader_next(SourceReader *s, char **ret_text, unsigned *ret_line, char **ret_error);

/* Reads a whole source file (a map or alias source, an :include: file). */
int read_source_file(const char *path, char **ret_buf, size_t *ret_len, int *ret_fd);
