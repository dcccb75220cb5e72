/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The aliases(5) syntax and alias targets. A source file has "name: target, target" entries;
 * lines that start with white space continue the entry above; '#' starts a comment line; a name
 * may be quoted ("a b": ...). Targets are addresses, "/file", "|command" (quoted or not) and
 * ":include:/path". alias_parse_file() calls back once per entry and fails with -EINVAL and
 * "FILE:LINE: what" on the first malformed line, before any callback is trusted by the caller
 * (map_build() collects everything first).
 */

#include "common/macro.h"

typedef enum AliasTargetKind {
        ALIAS_TARGET_ADDRESS,
        ALIAS_TARGET_FILE,       /* "/path" */
        ALIAS_TARGET_COMMAND,    /* "|command", without the bar */
        ALIAS_TARGET_INCLUDE,    /* ":include:/path", the path */
} AliasTargetKind;

typedef struct AliasTarget {
        AliasTargetKind kind;
        char *value;
} AliasTarget;

typedef int (*alias_entry_cb)(const char *name, const char *value, unsigned line, void *userdata);

int alias_parse_file(const char *path, alias_entry_cb cb, void *userdata, char **ret_error);
int alias_parse_buffer(const char *name, const char *buf, size_t len, alias_entry_cb cb, void *userdata,
                       char **ret_error);

/* Splits an alias value ("a, \"|cmd x\", /f, :include:/p") into targets. */
int alias_split_targets(const char *value, AliasTarget **ret, size_t *ret_n);
void alias_targets_free(AliasTarget *t, size_t n);
