/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The table of every known main.cf parameter: name, type, default (raw, before $name expansion) and
 * one line of documentation. It is the single source for defaults, for `mtactl config -d`, for the
 * unknown-name check and for the parameter list in mta.conf(5) (a test compares the two).
 *
 * A few defaults depend on the machine (myhostname, mydomain): their table default is NULL and
 * params_default() computes them.
 */

#include <stddef.h>

typedef enum ParamType {
        PARAM_STRING,
        PARAM_LIST,        /* commas and/or white space */
        PARAM_BOOL,        /* yes/no */
        PARAM_SIZE,        /* bytes, plain integer (Postfix takes no unit suffix for sizes) */
        PARAM_TIME,        /* number with optional unit s, m, h, d, w; the default unit is per parameter */
        PARAM_INT,
        PARAM_MAPS,        /* list of type:path map references */
} ParamType;

typedef struct ParamInfo {
        const char *name;
        ParamType type;
        const char *default_value;   /* NULL: computed from the machine, see params_default() */
        char time_unit;              /* PARAM_TIME only: 's', 'm', 'h', 'd' */
        const char *doc;
} ParamInfo;

extern const ParamInfo params_table[];
extern const size_t params_table_size;

const ParamInfo *params_find(const char *name);

/* The raw default of a parameter, computing machine-dependent ones; NULL for an unknown name. The
 * returned string is static or cached and must not be freed. */
const char *params_default(const char *name);

/* The known name nearest to an unknown one (edit distance), or NULL when nothing is close. */
const char *params_suggest(const char *name);
