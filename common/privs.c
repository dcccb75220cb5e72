/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/privs.h"

int privs_drop_to_ids(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        if (setgroups(n_groups, n_groups > 0 ? groups : NULL) < 0)
                return negative_errno();
        if (setresgid(gid, gid, gid) < 0)
                return negative_errno();
        if (setresuid(uid, uid, uid) < 0)
                return negative_errno();
        /* Belt and braces: if any step silently failed we must not go on as root. */
        if (uid != 0 && (setuid(0) == 0 || geteuid() == 0 || getuid() == 0))
                return -EPERM;
        return 0;
}

int privs_drop_to_user(const char *user) {
        struct passwd *pw;

        errno = 0;
        pw = getpwnam(user);
        if (!pw)
                return errno > 0 ? -errno : -ESRCH;
        if (pw->pw_uid == 0)
                return -EPERM;
        return privs_drop_to_ids(pw->pw_uid, pw->pw_gid, &pw->pw_gid, 1);
}

int privs_drop_if_root(const char *user) {
        if (geteuid() != 0)
                return 0;
        return privs_drop_to_user(user);
}
