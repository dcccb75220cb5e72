/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * main.cf: parsed exactly as Postfix does (name = value, # comments, continuation lines that start
 * with white space, $name and ${name} expansion with ${name?text} and ${name:text}), with every
 * parameter falling back to its default from params.h. A Config is read-only once loaded.
 *
 * config_load() returns -ENOENT when DIR/main.cf is missing (callers may treat that as "all
 * defaults" with config_new_defaults()), -EINVAL on a syntax error, with *ret_error set to
 * "FILE:LINE: what is wrong". Unknown names are kept, as Postfix keeps them, and listed by
 * config_unknown(). Getters for known parameters never fail for lack of a value; typed getters
 * return -EINVAL (with the parameter named in the caller's message) on a malformed value.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"
#include "common/params.h"

typedef struct Config Config;

/* The directory from -c, else $MTA_CONFIG_DIR, else the compiled-in default. */
const char *config_dir_default(const char *arg_dir);

int config_load(const char *dir, Config **ret, char **ret_error);
int config_new_defaults(const char *dir, Config **ret);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

const char *config_dir(const Config *c);
const char *config_path(const Config *c);   /* DIR/main.cf */

/* Sets a value as if main.cf had it (for -o overrides and tests). */
int config_set(Config *c, const char *name, const char *value);

/* Raw value as written in main.cf, or the default; NULL for an unknown name not in main.cf. */
const char *config_get_raw(const Config *c, const char *name);
/* True when main.cf sets the name (what `postconf -n` lists). */
bool config_is_set(const Config *c, const char *name);
/* Line in main.cf where name was set, 0 when not set. */
unsigned config_line_of(const Config *c, const char *name);

/* Value with $name expansion done (cached inside the Config); NULL for an unknown name. Expansion of
 * an unknown $name gives the empty string; a loop is cut off and gives the empty string. */
const char *config_get(const Config *c, const char *name);
/* Expands $name references in any string against c (used for values of map lookups, etc.). */
int config_expand(const Config *c, const char *text, char **ret);

int config_get_bool(const Config *c, const char *name, bool *ret);
int config_get_size(const Config *c, const char *name, uint64_t *ret);
int config_get_int(const Config *c, const char *name, int64_t *ret);
int config_get_time(const Config *c, const char *name, uint64_t *ret_seconds);
int config_get_list(const Config *c, const char *name, char ***ret);   /* strv, lower-cased: no */

/* Parsers behind the typed getters, for tests and for other callers. */
int config_parse_bool(const char *s, bool *ret);
int config_parse_size(const char *s, uint64_t *ret);
int config_parse_time(const char *s, char default_unit, uint64_t *ret_seconds);

/* Names set in main.cf that are not in params.h, in file order (strv), with their lines. */
int config_unknown(const Config *c, char ***ret_names, unsigned **ret_lines);

/* Every name set in main.cf, in file order. */
int config_set_names(const Config *c, char ***ret);
