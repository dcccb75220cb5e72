/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/local/maildir.h"

static int open_or_make_dir(int at_fd, const char *name) {
        int fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 || errno != ENOENT)
                return fd >= 0 ? fd : negative_errno();
        if (mkdirat(at_fd, name, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd >= 0 ? fd : negative_errno();
}

int maildir_deliver(int base_fd, const char *path, const MailboxOptions *o, int queue_fd, uint64_t offset,
                    uint64_t size, const MboxEnvelope *env, MailboxOutcome *ret) {
        _cleanup_close_ int dir_fd = -EBADF, tmp_fd = -EBADF, new_fd = -EBADF, cur_fd = -EBADF, fd = -EBADF;
        char name[256], host[128];
        uint64_t bytes = 0, written = 0;
        unsigned flags = MBOX_NO_FROM_LINE;
        struct timespec ts;
        struct stat st;
        int r;

        if (base_fd < 0 || isempty(path) || path[0] == '/' || !o || !env || !ret)
                return -EINVAL;

        /* The Maildir itself and its parents below the home directory, each opened without
         * following a symbolic link at the last step. */
        dir_fd = fcntl(base_fd, F_DUPFD_CLOEXEC, 3);
        if (dir_fd < 0)
                return negative_errno();
        char comp[256];
        for (const char *p = path; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 0) {
                        p++;
                        continue;
                }
                if (n >= sizeof comp || (n == 2 && strncmp(p, "..", 2) == 0) || (n == 1 && *p == '.')) {
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.3.5", "home_mailbox %s is not a path below home",
                                path);
                        return 0;
                }
                memcpy(comp, p, n);
                comp[n] = '\0';
                r = open_or_make_dir(dir_fd, comp);
                if (r < 0) {
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open or create maildir %s: %s", path,
                                strerror(-r));
                        return 0;
                }
                safe_close(dir_fd);
                dir_fd = r;
                p += n;
        }
        if ((r = tmp_fd = open_or_make_dir(dir_fd, "tmp")) < 0 ||
            (r = new_fd = open_or_make_dir(dir_fd, "new")) < 0 ||
            (r = cur_fd = open_or_make_dir(dir_fd, "cur")) < 0) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot create maildir %s: %s", path, strerror(-r));
                return 0;
        }
        if (fstat(dir_fd, &st) < 0 || (o->check_owner && st.st_uid != o->owner)) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "refusing to deliver: maildir %s has the wrong owner",
                        path);
                return 0;
        }

        r = mbox_write_message(-1, queue_fd, offset, size, env, flags, &bytes);
        if (r < 0) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.3.0", "cannot read queue file: %s", strerror(-r));
                return 0;
        }
        if (o->size_limit > 0 && bytes > o->size_limit) {
                mailbox_outcome_set(ret, MAIL_PERMFAIL, "5.2.2", "mailbox full: message of %" PRIu64
                        " bytes is above mailbox_size_limit %" PRIu64, bytes, o->size_limit);
                return 0;
        }

        /* The classic unique name: time, microseconds and pid, then the host name. */
        if (gethostname(host, sizeof host) < 0)
                snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        for (char *h = host; *h; h++)
                if (*h == '/' || *h == ':')
                        *h = '_';
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name, sizeof name, "%" PRIu64 ".M%ldP%d.%s,S=%" PRIu64, (uint64_t) ts.tv_sec,
                 ts.tv_nsec / 1000, (int) getpid(), host, bytes);

        fd = openat(tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
        if (fd < 0) {
                mailbox_write_error(ret, negative_errno(), "cannot create maildir file");
                return 0;
        }
        r = mbox_write_message(fd, queue_fd, offset, size, env, flags, &written);
        if (r >= 0 && written != bytes)
                r = -EIO;
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && renameat(tmp_fd, name, new_fd, name) < 0)
                r = negative_errno();
        if (r >= 0 && fsync(new_fd) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlinkat(tmp_fd, name, 0);
                (void) unlinkat(new_fd, name, 0);
                mailbox_write_error(ret, r, path);
                return 0;
        }
        mailbox_outcome_set(ret, MAIL_OK, "2.0.0", "delivered to maildir %s (%" PRIu64 " bytes)", path, bytes);
        return 0;
}
