/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * ~/dead.letter, where mail(1) keeps what it could not send: when the mail system does not take
 * a message that sendmail has read completely, the message is appended there in mbox format
 * (a "From sender date" line, ">From " quoting, a blank line after), so the user can read it with
 * `mail -f ~/dead.letter` and send it again. The file is created with mode 0600 and never
 * followed through a symlink. Returns 0 or a negative errno.
 */

#include <stddef.h>

/* $HOME/dead.letter when HOME is an absolute path, else the passwd home directory. */
int deadletter_path(char **ret);

int deadletter_save(const char *path, const char *sender, const char *content, size_t len);
