/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Lookup tables named "type:path" as in Postfix. "gdbm:" is the native type and "hash:"/"btree:"
 * are accepted as names for it, so a Postfix main.cf works unchanged; the compiled file is
 * "path.db". A reference without a type is gdbm. Keys are folded to lower case when the map is
 * built and when it is looked up. Every backend sits behind one method table (lookup, iterate,
 * close) in map.c; gdbm is map-gdbm.c.
 *
 * map_lookup() returns 1 and the value when the key is found, 0 when it is not, and a negative
 * errno when the map cannot be read: callers turn that into a temporary failure, never into "not
 * found". map_open() returns -ENOENT when the compiled file is missing.
 *
 * MapList is an ordered list of maps, as alias_maps and virtual_alias_maps name them; the first
 * map that has the key wins.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"

typedef struct Map Map;
typedef struct MapList MapList;

typedef int (*map_iterate_cb)(const char *key, const char *value, void *userdata);

/* Splits "hash:/etc/aliases" into type "gdbm" and path; -EOPNOTSUPP for a type we do not have
 * (ldap:, cidr:, ...), -EINVAL for a malformed reference. */
int map_ref_parse(const char *ref, char **ret_type, char **ret_path);
/* The compiled file a reference names ("path.db"). */
int map_ref_db_path(const char *ref, char **ret);

int map_open(const char *ref, Map **ret);
Map *map_free(Map *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Map *, map_free);
int map_lookup(Map *m, const char *key, char **ret_value);
int map_iterate(Map *m, map_iterate_cb cb, void *userdata);
const char *map_name(const Map *m);

/* spec: list of references; may be empty. A map whose compiled file is missing while its source
 * file exists and is empty counts as an empty map (there is nothing a compile would add). */
int maplist_open(const char *spec, MapList **ret);
MapList *maplist_free(MapList *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(MapList *, maplist_free);
int maplist_lookup(MapList *l, const char *key, char **ret_value);
size_t maplist_size(const MapList *l);
/* The i-th map that is open (NULL past the end), e.g. to find whom an alias map belongs to. */
Map *maplist_get(const MapList *l, size_t i);

/*
 * Building. The source is read whole, every line checked, and nothing is replaced when any line is
 * malformed (-EINVAL, *ret_error = "FILE:LINE: what"): a typo must never silently drop an entry.
 * The new map is written to a temporary file beside the target, synced, and renamed over it, so a
 * reader sees the old map or the new one, never half of one.
 */
typedef enum MapSyntax {
        MAP_SYNTAX_POSTMAP,    /* "key value" lines, as postmap(1) */
        MAP_SYNTAX_ALIASES,    /* "name: target, target" lines, as postalias(1) and aliases(5) */
} MapSyntax;

int map_build(const char *ref, MapSyntax syntax, char **ret_error);

/* As map_build(), and reports each duplicate key ("FILE:LINE: duplicate entry ...": the first
 * value is kept, as postmap and postalias do) through warn. */
typedef void (*map_warning_cb)(const char *message, void *userdata);
int map_build_full(const char *ref, MapSyntax syntax, map_warning_cb warn, void *userdata, char **ret_error);

/* The compiled file an open map reads. */
const char *map_db_path(const Map *m);
