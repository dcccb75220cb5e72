/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "tools/sendmail/deadletter.h"

int deadletter_path(char **ret) {
        const char *home = getenv("HOME");
        char *p;

        if (isempty(home) || home[0] != '/') {
                struct passwd *pw = getpwuid(getuid());
                if (!pw || isempty(pw->pw_dir))
                        return -ENOENT;
                home = pw->pw_dir;
        }
        if (asprintf(&p, "%s/dead.letter", streq(home, "/") ? "" : home) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int write_all(int fd, const char *data, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, data, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                data += k;
                n -= (size_t) k;
        }
        return 0;
}

int deadletter_save(const char *path, const char *sender, const char *content, size_t len) {
        _cleanup_close_ int fd = -EBADF;
        char from[512], date[64];
        time_t now = time(NULL);
        struct tm tm;
        size_t i = 0;
        int r;

        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return negative_errno();
        if (flock(fd, LOCK_EX) < 0)
                return negative_errno();

        if (!localtime_r(&now, &tm) || strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm) == 0)
                return -EINVAL;
        snprintf(from, sizeof from, "From %s %s\n", isempty(sender) ? "MAILER-DAEMON" : sender, date);
        r = write_all(fd, from, strlen(from));
        if (r < 0)
                return r;

        while (i < len) {
                const char *lf = memchr(content + i, '\n', len - i);
                size_t n = lf ? (size_t) (lf - (content + i)) + 1 : len - i;
                const char *l = content + i + strspn(content + i, ">");
                /* mboxrd quoting: ">*From " gets one more '>'. */
                if ((size_t) (l - (content + i)) + 5 <= n && strncmp(l, "From ", 5) == 0) {
                        r = write_all(fd, ">", 1);
                        if (r < 0)
                                return r;
                }
                r = write_all(fd, content + i, n);
                if (r < 0)
                        return r;
                i += n;
        }
        /* The message ends with a newline, and a blank line separates it from the next one. */
        if (len > 0 && content[len - 1] != '\n')
                r = write_all(fd, "\n\n", 2);
        else
                r = write_all(fd, "\n", 1);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}
