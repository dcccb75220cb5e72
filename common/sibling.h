/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Finding our other programs (mta-local for the queue runner, mta-queue for mtactl, mta-alias and
 * mtactl for sendmail) without a fixed path, so the same binaries work installed, from the build
 * tree and in tests: beside the running executable first, then at the given paths relative to its
 * directory (the build tree's layout), then in the install directories. When none has it, *buf is
 * the bare name, for execvp() to search PATH. Returns 0, or -ENAMETOOLONG.
 */

#include <stddef.h>

int sibling_find(const char *name, const char *const *relative, char *buf, size_t size);
