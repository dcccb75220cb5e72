/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * NULL-terminated string vectors and the small string helpers the parsers share. A vector owns its
 * strings; strv_free() accepts NULL. Functions return 0 or -ENOMEM.
 */

#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
#define _cleanup_strv_free_ _cleanup_(strv_freep)

size_t strv_length(char * const *l);
int strv_push(char ***l, char *s);            /* takes ownership of s, also on failure */
int strv_extend(char ***l, const char *s);    /* copies s */
bool strv_contains(char * const *l, const char *s);
bool strv_contains_case(char * const *l, const char *s);

/* Splits a Postfix list value: items separated by commas and/or white space; empty items dropped. */
int strv_split_list(const char *s, char ***ret);

char *strstrip(char *s);                      /* strips leading and trailing white space in place */
char *ascii_strlower(char *s);                /* in place */
bool string_has_cc(const char *s);            /* any control character (includes CR, LF, NUL-free) */

/* Replaces *ret_error (when ret_error is not NULL) with a formatted message and returns r, so a
 * parser can say `return error_set(ret_error, -EINVAL, "%s:%u: missing '='", path, line);`. */
int error_set(char **ret_error, int r, const char *format, ...) _printf_(3, 4);
