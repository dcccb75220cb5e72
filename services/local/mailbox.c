/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/local/mailbox.h"

#define LOCK_CONTENT_MAX 256

void mailbox_outcome_set(MailboxOutcome *ret, MailStatus st, const char *dsn, const char *fmt, ...) {
        va_list ap;

        ret->status = st;
        snprintf(ret->dsn, sizeof ret->dsn, "%s", dsn);
        va_start(ap, fmt);
        vsnprintf(ret->text, sizeof ret->text, fmt, ap);
        va_end(ap);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Waiting for a lock: short sleeps first (a delivery holds a lock for milliseconds), growing to
 * lock_delay, until attempts * lock_delay has passed. */
typedef struct Backoff {
        uint64_t deadline;
        uint64_t step;
        uint64_t max_step;
} Backoff;

static void backoff_init(Backoff *b, const MailboxOptions *o) {
        uint64_t total = (uint64_t) o->lock_attempts * o->lock_delay_usec;
        b->deadline = now_usec() + total;
        b->step = 10000;
        b->max_step = o->lock_delay_usec > 0 ? o->lock_delay_usec : 10000;
}

/* Sleeps one step; false when the time is up. */
static bool backoff_wait(Backoff *b) {
        uint64_t now = now_usec();
        if (now >= b->deadline)
                return false;
        uint64_t s = b->step < b->deadline - now ? b->step : b->deadline - now;
        struct timespec ts = { .tv_sec = (time_t) (s / 1000000u), .tv_nsec = (long) (s % 1000000u) * 1000 };
        (void) nanosleep(&ts, NULL);
        b->step = b->step * 2 < b->max_step ? b->step * 2 : b->max_step;
        return true;
}

/* ---- safe open ---- */

static const char *unsafe_reason(const struct stat *st, const MailboxOptions *o) {
        if (S_ISLNK(st->st_mode))
                return "is a symbolic link";
        if (S_ISDIR(st->st_mode))
                return "is a directory";
        if (!S_ISREG(st->st_mode))
                return "is not a regular file";
        if (st->st_nlink != 1)
                return "has more than one hard link";
        if (o->check_owner && st->st_uid != o->owner)
                return "has the wrong owner";
        return NULL;
}

/* Opens dir_fd/name for appending. Returns the fd, or a negative errno; *ret_why is set when the
 * file exists but must not be written (-EPERM then). */
static int safe_open(int dir_fd, const char *name, const MailboxOptions *o, bool create,
                     const char **ret_why) {
        for (unsigned tries = 0; tries < 3; tries++) {
                struct stat before, after;
                const char *why;

                if (fstatat(dir_fd, name, &before, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT || !create)
                                return negative_errno();
                        /* O_EXCL with O_CREAT never follows a symlink, not even a dangling one. */
                        _cleanup_close_ int fd = openat(dir_fd, name,
                                                        O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                        O_NOCTTY | O_CLOEXEC, 0600);
                        if (fd < 0) {
                                if (errno == EEXIST)
                                        continue;
                                return negative_errno();
                        }
                        if (fstat(fd, &after) < 0)
                                return negative_errno();
                        why = unsafe_reason(&after, o);
                        if (why) {
                                *ret_why = why;
                                return -EPERM;
                        }
                        /* The runner removes the queue file once we report success; a mailbox whose
                         * directory entry is still only in memory could vanish with a power cut. */
                        if (fsync(dir_fd) < 0)
                                return negative_errno();
                        return TAKE_FD(fd);
                }
                why = unsafe_reason(&before, o);
                if (why) {
                        *ret_why = why;
                        return -EPERM;
                }
                /* O_NONBLOCK: if the name was swapped for a FIFO after the lstat, the open must not
                 * hang; the fstat below refuses it. */
                _cleanup_close_ int fd = openat(dir_fd, name,
                                                O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
                                                O_CLOEXEC);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        if (errno == ELOOP) {
                                *ret_why = "is a symbolic link";
                                return -EPERM;
                        }
                        if (errno == ENXIO) {
                                *ret_why = "is not a regular file";
                                return -EPERM;
                        }
                        return negative_errno();
                }
                if (fstat(fd, &after) < 0)
                        return negative_errno();
                why = unsafe_reason(&after, o);
                if (!why && (after.st_dev != before.st_dev || after.st_ino != before.st_ino))
                        why = "was replaced while it was opened";
                if (why) {
                        *ret_why = why;
                        return -EPERM;
                }
                int fl = fcntl(fd, F_GETFL);
                if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                        return negative_errno();
                return TAKE_FD(fd);
        }
        *ret_why = "keeps changing";
        return -EPERM;
}

/* ---- fcntl and flock ---- */

static int fcntl_lock_wait(int fd, const MailboxOptions *o) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        Backoff b;

        backoff_init(&b, o);
        for (;;) {
                if (fcntl(fd, F_SETLK, &fl) == 0)
                        return 0;
                if (errno != EAGAIN && errno != EACCES && errno != EINTR)
                        return negative_errno();
                if (!backoff_wait(&b))
                        return -EWOULDBLOCK;
        }
}

static int flock_wait(int fd, const MailboxOptions *o) {
        Backoff b;

        backoff_init(&b, o);
        for (;;) {
                if (flock(fd, LOCK_EX | LOCK_NB) == 0)
                        return 0;
                if (errno != EWOULDBLOCK && errno != EINTR)
                        return negative_errno();
                if (!backoff_wait(&b))
                        return -EWOULDBLOCK;
        }
}

/* ---- dot-lock ---- */

typedef struct LockInfo {
        dev_t dev;
        ino_t ino;
        time_t mtime;
        bool regular;
        pid_t pid;
        bool ours;                /* written by mta-local */
        bool journal;             /* ... with the mailbox size before its write */
        uint64_t j_dev, j_ino, j_size;
        char content[LOCK_CONTENT_MAX];
} LockInfo;

/* 0 and the lock's details, -ENOENT when there is none. */
static int lock_read(int dir_fd, const char *lockname, LockInfo *ret) {
        LockInfo li = {};
        struct stat st;

        if (fstatat(dir_fd, lockname, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return negative_errno();
        li.dev = st.st_dev;
        li.ino = st.st_ino;
        li.mtime = st.st_mtime;
        li.regular = S_ISREG(st.st_mode);
        if (li.regular) {
                _cleanup_close_ int fd = openat(dir_fd, lockname,
                                                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
                if (fd >= 0) {
                        ssize_t k = read(fd, li.content, sizeof li.content - 1);
                        if (k > 0)
                                li.content[k] = '\0';
                }
        }
        /* liblockfile and mutt write the holder's pid as the first line; ours adds a second line. */
        char *end;
        long pid = strtol(li.content, &end, 10);
        if (end != li.content && pid > 0 && pid <= INT32_MAX && (*end == '\n' || *end == '\0'))
                li.pid = (pid_t) pid;
        const char *second = strchr(li.content, '\n');
        if (li.pid > 0 && second) {
                uint64_t d, i, s;
                if (strncmp(second + 1, "mta-local", 9) == 0 && (second[10] == '\n' || second[10] == ' ')) {
                        li.ours = true;
                        if (sscanf(second + 10, " %" SCNu64 " %" SCNu64 " %" SCNu64, &d, &i, &s) == 3) {
                                li.journal = true;
                                li.j_dev = d;
                                li.j_ino = i;
                                li.j_size = s;
                        }
                }
        }
        *ret = li;
        return 0;
}

static bool lock_holder_alive(const LockInfo *li) {
        if (li->pid <= 0)
                return false;
        return kill(li->pid, 0) == 0 || errno == EPERM;
}

/* A lock is stale when nothing holds it. One of ours is stale when its process is gone: our
 * deliveries to a mailbox run as its owner, so a pid we may not even signal has been reused by
 * someone else. With the fcntl lock in use, one of ours is also stale once older than
 * stale_lock_sec, which no delivery takes; lock_break() cannot hurt a live writer, which holds
 * the fcntl lock. Any other lock is stale when older than stale_lock_sec and its holder, if it
 * names one, is not alive (Debian's liblockfile rule, with the age required). */
static bool lock_stale(const LockInfo *li, const MailboxOptions *o) {
        bool old = time(NULL) - li->mtime >= (time_t) o->stale_lock_sec;

        if (li->ours)
                return kill(li->pid, 0) < 0 || (old && o->fcntl_lock);
        return old && !lock_holder_alive(li);
}

static bool lock_same(const LockInfo *a, const LockInfo *b) {
        return a->dev == b->dev && a->ino == b->ino && streq(a->content, b->content);
}

/* Removes a stale lock, first cutting the mailbox back if the lock says a delivery died while
 * writing. All of it happens under the mailbox's fcntl lock and only while the lock file is still
 * the one we judged: a concurrent delivery that broke it first and has begun to write holds the
 * fcntl lock, so it can never lose what it writes to our late truncation. When the fcntl lock is
 * busy (a reader, or a live writer), nothing is broken now: false, and the caller waits. */
static bool lock_break(int dir_fd, const char *name, const char *lockname, const LockInfo *li,
                       const MailboxOptions *o) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        _cleanup_close_ int fd = -EBADF;
        const char *why = NULL;
        LockInfo again;

        fd = safe_open(dir_fd, name, o, false, &why);
        if (fd >= 0 && fcntl(fd, F_SETLK, &fl) < 0)
                return false;
        if (lock_read(dir_fd, lockname, &again) < 0)
                return true;     /* gone meanwhile: try to take it */
        if (!lock_same(li, &again))
                return false;
        if (fd >= 0 && li->journal) {
                struct stat st;
                if (fstat(fd, &st) == 0 && (uint64_t) st.st_dev == li->j_dev &&
                    (uint64_t) st.st_ino == li->j_ino && (uint64_t) st.st_size > li->j_size) {
                        if (ftruncate(fd, (off_t) li->j_size) == 0)
                                (void) fsync(fd);
                }
        }
        (void) unlinkat(dir_fd, lockname, 0);
        return true;
}

typedef MailboxDotLock DotLock;

/* Makes a file holding our pid under a name of our own, to be linked to the lock's name: the lock
 * then never exists without the line that lets the next delivery see that its holder died. (A lock
 * created empty and killed before its write waited stale_lock_time, 500 s, before anyone broke it.)
 * The leading dot keeps the name apart from any mailbox, which is a user name. */
static int dotlock_prepare(int dir_fd, const char *lockname, char *tmpname, size_t tmpname_size,
                           int *ret_fd, struct stat *ret_st) {
        char text[64];
        int n = snprintf(text, sizeof text, "%d\nmta-local\n", (int) getpid());

        if ((size_t) snprintf(tmpname, tmpname_size, ".%s.%d", lockname, (int) getpid()) >= tmpname_size)
                return -ENAMETOOLONG;
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_close_ int fd = openat(dir_fd, tmpname,
                                                O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0644);
                if (fd < 0) {
                        /* Left by a process that had our pid and died before it removed it. */
                        if (errno == EEXIST && attempt == 0 && unlinkat(dir_fd, tmpname, 0) == 0)
                                continue;
                        return negative_errno();
                }
                if (write(fd, text, (size_t) n) != n || fstat(fd, ret_st) < 0) {
                        int r = errno > 0 ? -errno : -EIO;
                        (void) unlinkat(dir_fd, tmpname, 0);
                        return r;
                }
                *ret_fd = TAKE_FD(fd);
                return 0;
        }
}

static int dotlock_acquire(int dir_fd, const char *name, const char *lockname, const MailboxOptions *o,
                           DotLock *ret) {
        char tmpname[NAME_MAX + 1];
        _cleanup_close_ int fd = -EBADF;
        unsigned breaks = 0;
        struct stat st;
        Backoff b;
        int r;

        r = dotlock_prepare(dir_fd, lockname, tmpname, sizeof tmpname, &fd, &st);
        if (r < 0)
                return r;
        backoff_init(&b, o);
        for (;;) {
                if (linkat(dir_fd, tmpname, dir_fd, lockname, 0) == 0) {
                        (void) unlinkat(dir_fd, tmpname, 0);
                        *ret = (DotLock) { .fd = TAKE_FD(fd), .dev = st.st_dev, .ino = st.st_ino };
                        return 0;
                }
                if (errno != EEXIST) {
                        r = negative_errno();
                        break;
                }

                LockInfo li;
                r = lock_read(dir_fd, lockname, &li);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        break;
                if (lock_stale(&li, o) && breaks < 16 && lock_break(dir_fd, name, lockname, &li, o)) {
                        breaks++;
                        continue;
                }
                if (!backoff_wait(&b)) {
                        r = -EWOULDBLOCK;
                        break;
                }
        }
        (void) unlinkat(dir_fd, tmpname, 0);
        return r;
}

/* Records the mailbox size before the write, for the recovery in lock_break(). */
static int dotlock_journal(DotLock *l, int mbox_fd, uint64_t size) {
        struct stat st;
        char text[128];

        if (fstat(mbox_fd, &st) < 0)
                return negative_errno();
        int n = snprintf(text, sizeof text, "%d\nmta-local %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                         (int) getpid(), (uint64_t) st.st_dev, (uint64_t) st.st_ino, size);
        if (pwrite(l->fd, text, (size_t) n, 0) != n)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

static void dotlock_release(int dir_fd, const char *lockname, DotLock *l) {
        struct stat st;

        if (l->fd < 0)
                return;
        /* Remove it only while it is still ours: a lock broken as stale meanwhile belongs to
         * someone else now. */
        if (fstatat(dir_fd, lockname, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == l->dev &&
            st.st_ino == l->ino)
                (void) unlinkat(dir_fd, lockname, 0);
        l->fd = safe_close(l->fd);
}

/* ---- the append ---- */

void mailbox_write_error(MailboxOutcome *ret, int err, const char *what) {
        /* As Postfix's mbox_dsn(): a full file system is temporary, a full quota or an oversized
         * file is the recipient's mailbox being full and bounces. */
        if (err == -EDQUOT || err == -EFBIG)
                mailbox_outcome_set(ret, MAIL_PERMFAIL, "5.2.2", "mailbox full: %s: %s", what, strerror(-err));
        else if (err == -ENOSPC)
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.3.0", "insufficient system storage: %s: %s", what,
                        strerror(-err));
        else
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "%s: %s", what, strerror(-err));
}

int mailbox_group_open(MailboxGroup *g, int dir_fd, const char *name, const MailboxOptions *o,
                       MailboxOutcome *ret) {
        MailboxGroup n = { .dir_fd = dir_fd, .dl = { .fd = -EBADF }, .fd = -EBADF };
        const char *why = NULL;
        struct stat st;
        int r;

        if (!g || dir_fd < 0 || isempty(name) || strchr(name, '/') || !o || !ret)
                return -EINVAL;
        if ((size_t) snprintf(n.name, sizeof n.name, "%s", name) >= sizeof n.name ||
            (size_t) snprintf(n.lockname, sizeof n.lockname, "%s.lock", name) >= sizeof n.lockname)
                return -ENAMETOOLONG;
        n.o = *o;

        if (o->dotlock) {
                r = dotlock_acquire(dir_fd, name, n.lockname, o, &n.dl);
                if (r == -EWOULDBLOCK) {
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot lock %s: lock file %s is held", name,
                                n.lockname);
                        return 0;
                }
                if (r < 0) {
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, r == -ENOSPC || r == -EDQUOT ? "4.3.0" : "4.2.0",
                                "cannot create lock file %s: %s", n.lockname, strerror(-r));
                        return 0;
                }
        }

        n.fd = safe_open(dir_fd, name, o, true, &why);
        if (n.fd < 0) {
                if (why)
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "refusing to deliver: %s %s", name, why);
                else
                        mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open %s: %s", name,
                                strerror(-n.fd));
                goto fail;
        }
        if (o->fcntl_lock && (r = fcntl_lock_wait(n.fd, o)) < 0) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot lock %s (fcntl): %s", name,
                        r == -EWOULDBLOCK ? "held by another process" : strerror(-r));
                goto fail;
        }
        if (o->flock_lock && (r = flock_wait(n.fd, o)) < 0) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "cannot lock %s (flock): %s", name,
                        r == -EWOULDBLOCK ? "held by another process" : strerror(-r));
                goto fail;
        }
        if (fstat(n.fd, &st) < 0) {
                mailbox_write_error(ret, negative_errno(), name);
                goto fail;
        }
        n.start_size = n.size = (uint64_t) st.st_size;
        *g = n;
        return 1;

fail:
        safe_close(n.fd);
        dotlock_release(dir_fd, n.lockname, &n.dl);
        return 0;
}

int mailbox_group_append(MailboxGroup *g, int queue_fd, uint64_t offset, uint64_t size,
                         const MboxEnvelope *env, MailboxOutcome *ret) {
        uint64_t bytes = 0, written = 0, before;
        int r;

        if (!g || g->fd < 0 || !env || !ret)
                return -EINVAL;
        if (g->broken) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.2.0", "%s: an earlier write could not be undone",
                        g->name);
                return 0;
        }
        before = g->size;

        r = mbox_write_message(-1, queue_fd, offset, size, env, g->o.mbox_flags, &bytes);
        if (r < 0) {
                mailbox_outcome_set(ret, MAIL_TEMPFAIL, "4.3.0", "cannot read queue file: %s", strerror(-r));
                return 0;
        }
        /* Against the size with the group's earlier messages, which are as good as there. */
        if (g->o.size_limit > 0 && (before > g->o.size_limit || bytes > g->o.size_limit - before)) {
                mailbox_outcome_set(ret, MAIL_PERMFAIL, "5.2.2",
                        "mailbox full: %s would grow to %" PRIu64 " bytes, above mailbox_size_limit "
                        "%" PRIu64,
                        g->name, before + bytes, g->o.size_limit);
                return 0;
        }
        /* The journal names the size before the group's first message: a delivery killed anywhere
         * in the group is cut back to there, and none of the group was answered yet. */
        if (g->dl.fd >= 0 && !g->journaled) {
                r = dotlock_journal(&g->dl, g->fd, g->start_size);
                if (r < 0) {
                        mailbox_write_error(ret, r, g->lockname);
                        return 0;
                }
                g->journaled = true;
        }

        g->dirty = true;
        r = mbox_write_message(g->fd, queue_fd, offset, size, env, g->o.mbox_flags, &written);
        if (r >= 0 && written != bytes)
                r = -EIO;    /* the queue file changed under us */
        if (r < 0) {
                /* Never leave part of a message behind; the group's commit makes the cut durable. */
                if (ftruncate(g->fd, (off_t) before) < 0)
                        g->broken = true;
                mailbox_write_error(ret, r, g->name);
                return 0;
        }
        g->size = before + bytes;
        g->n_appended++;
        mailbox_outcome_set(ret, MAIL_OK, "2.0.0", "delivered to %s (%" PRIu64 " bytes)", g->name, bytes);
        return 0;
}

int mailbox_group_commit(MailboxGroup *g) {
        int r = 0;

        if (!g || g->fd < 0)
                return -EINVAL;
        if (g->broken)
                r = -EIO;
        else if (g->dirty && fsync(g->fd) < 0)
                r = negative_errno();
        if (r < 0) {
                /* None of the group may stay: it is answered as failed. */
                if (ftruncate(g->fd, (off_t) g->start_size) == 0) {
                        (void) fsync(g->fd);
                        g->broken = false;
                }
                g->size = g->start_size;
        }
        g->start_size = g->size;
        g->dirty = false;
        g->journaled = false;
        g->n_appended = 0;
        return r;
}

void mailbox_group_close(MailboxGroup *g) {
        if (!g || g->fd < 0)
                return;
        /* Appended but never committed: nobody may be told it is delivered, so it goes. */
        if (g->n_appended > 0 || g->dirty) {
                if (ftruncate(g->fd, (off_t) g->start_size) == 0)
                        (void) fsync(g->fd);
        }
        dotlock_release(g->dir_fd, g->lockname, &g->dl);
        g->fd = safe_close(g->fd);
}

int mailbox_append(int dir_fd, const char *name, const MailboxOptions *o, int queue_fd,
                   uint64_t offset, uint64_t size, const MboxEnvelope *env, MailboxOutcome *ret) {
        MailboxGroup g;
        int r;

        if (!env || !ret)
                return -EINVAL;
        r = mailbox_group_open(&g, dir_fd, name, o, ret);
        if (r <= 0)
                return r;
        r = mailbox_group_append(&g, queue_fd, offset, size, env, ret);
        if (r >= 0) {
                r = mailbox_group_commit(&g);
                if (r < 0 && ret->status == MAIL_OK)
                        mailbox_write_error(ret, r, name);
                r = 0;
        }
        mailbox_group_close(&g);
        return r;
}
