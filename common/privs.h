/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Dropping privileges. Under systemd the unit's User= does it; a program started as root by hand
 * calls privs_drop_to_user(mail_owner) before touching client data. The order is setgroups, then
 * setresgid, then setresuid, then a check that root cannot be regained. Returns 0, -ESRCH when the
 * user does not exist, -EPERM when the switch did not stick.
 */

#include <stdbool.h>
#include <sys/types.h>

int privs_drop_to_user(const char *user);
int privs_drop_to_ids(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups);
/* Drops to user when running as root; does nothing otherwise. */
int privs_drop_if_root(const char *user);
