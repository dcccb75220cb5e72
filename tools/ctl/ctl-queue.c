/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/config.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/mailq.h"
#include "common/queue.h"
#include "common/sibling.h"
#include "common/strv.h"
#include "tools/ctl/ctl.h"

/* Runs argv (no shell) and returns its exit status, or a negative errno. With out, its stdout is
 * captured there (first line, newline stripped). */
static int run_program(char **argv, char *out, size_t out_size) {
        int pipefd[2] = { -EBADF, -EBADF };
        pid_t pid;
        int status;

        if (out && pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return r;
        }
        if (pid == 0) {
                if (out && dup2(pipefd[1], STDOUT_FILENO) < 0)
                        _exit(127);
                if (strchr(argv[0], '/'))
                        execv(argv[0], argv);
                else
                        execvp(argv[0], argv);
                fprintf(stderr, "mtactl: cannot run %s: %m\n", argv[0]);
                _exit(127);
        }
        if (out) {
                size_t n = 0;
                ssize_t k;
                safe_close(pipefd[1]);
                while (n + 1 < out_size && (k = read(pipefd[0], out + n, out_size - 1 - n)) > 0)
                        n += (size_t) k;
                out[n] = 0;
                out[strcspn(out, "\n")] = 0;
                safe_close(pipefd[0]);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return negative_errno();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const char *queue_dir_of(const Config *c) {
        return config_get(c, "queue_directory");
}

/* hold/ may not exist yet; it gets the owner of the queue directory, not ours (root). */
static int ensure_subdir(const char *queue_dir, QueueDir d) {
        _cleanup_free_ char *p = NULL;
        struct stat st;
        if (asprintf(&p, "%s/%s", queue_dir, queue_dir_name(d)) < 0)
                return -ENOMEM;
        if (mkdir(p, 0700) < 0)
                return errno == EEXIST ? 0 : negative_errno();
        if (stat(queue_dir, &st) == 0 && chown(p, st.st_uid, st.st_gid) < 0)
                return negative_errno();
        return 0;
}

typedef enum Action {
        ACTION_DELETE,
        ACTION_HOLD,
        ACTION_RELEASE,
} Action;

/* Applies the action to one message in directory d. 1: done; 0: not there; negative: failed. */
static int act_on(const char *queue_dir, Action a, QueueDir d, const char *id) {
        _cleanup_(queue_file_freep) QueueFile *f = NULL;
        int r;

        if (d == QUEUE_CORRUPT) {
                /* A corrupt file cannot be parsed; it can only be deleted. */
                _cleanup_free_ char *p = NULL;
                if (a != ACTION_DELETE)
                        return 0;
                if (asprintf(&p, "%s/corrupt/%s", queue_dir, id) < 0)
                        return -ENOMEM;
                if (unlink(p) < 0)
                        return errno == ENOENT ? 0 : negative_errno();
                return 1;
        }
        r = queue_file_open_id(queue_dir, d, id, O_RDWR, true, &f);
        if (r == -ENOENT)
                return 0;
        if (r == -EWOULDBLOCK) {
                fprintf(stderr, "mtactl: %s: message is being delivered, try again later\n", id);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "mtactl: %s: cannot open queue file: %s\n", id, strerror(-r));
                return r;
        }
        switch (a) {
        case ACTION_DELETE:
                r = queue_file_remove(f, queue_dir);
                break;
        case ACTION_HOLD:
                r = ensure_subdir(queue_dir, QUEUE_HOLD);
                if (r >= 0)
                        r = queue_file_move(f, queue_dir, QUEUE_HOLD);
                break;
        case ACTION_RELEASE:
                /* Released mail is due at once, as with postsuper -H. */
                r = queue_file_set_schedule(f, (uint64_t) time(NULL), f->attempts);
                if (r >= 0)
                        r = queue_file_sync(f);
                if (r >= 0)
                        r = ensure_subdir(queue_dir, QUEUE_DEFERRED);
                if (r >= 0)
                        r = queue_file_move(f, queue_dir, QUEUE_DEFERRED);
                break;
        }
        if (r < 0) {
                fprintf(stderr, "mtactl: %s: %s\n", id, strerror(-r));
                return r;
        }
        return 1;
}

static int queue_action(const Config *c, Action a, char **ids) {
        static const QueueDir delete_dirs[] = { QUEUE_NEW, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
        static const QueueDir hold_dirs[] = { QUEUE_NEW, QUEUE_DEFERRED };
        static const QueueDir release_dirs[] = { QUEUE_HOLD };
        const QueueDir *dirs;
        size_t n_dirs, done = 0;
        const char *qd = queue_dir_of(c);
        bool all = strv_length(ids) == 1 && streq(ids[0], "ALL");
        int ret = 0;

        switch (a) {
        case ACTION_DELETE:
                dirs = delete_dirs, n_dirs = ELEMENTSOF(delete_dirs);
                break;
        case ACTION_HOLD:
                dirs = hold_dirs, n_dirs = ELEMENTSOF(hold_dirs);
                break;
        default:
                dirs = release_dirs, n_dirs = ELEMENTSOF(release_dirs);
        }

        if (!all)
                for (char **i = ids; *i; i++)
                        if (!queue_id_valid(*i)) {
                                fprintf(stderr, "mtactl: invalid queue id: %s\n", *i);
                                return 2;
                        }

        for (size_t d = 0; d < n_dirs; d++) {
                _cleanup_strv_free_ char **list = NULL;
                char **which = ids;
                if (all) {
                        int r = queue_list(qd, dirs[d], &list);
                        if (r < 0) {
                                fprintf(stderr, "mtactl: cannot list %s/%s: %s\n", qd, queue_dir_name(dirs[d]),
                                        strerror(-r));
                                return 1;
                        }
                        which = list;
                }
                for (char **i = which; i && *i; i++) {
                        int r = act_on(qd, a, dirs[d], *i);
                        if (r < 0)
                                ret = 1;
                        else if (r > 0)
                                done++;
                }
        }

        const char *what = a == ACTION_DELETE ? "Deleted" : a == ACTION_HOLD ? "Placed on hold" : "Released from hold";
        fprintf(stderr, "mtactl: %s: %zu message%s\n", what, done, done == 1 ? "" : "s");
        if (!all && done < strv_length(ids) && ret == 0)
                ret = 1;   /* some id was not found */
        return ret;
}

int ctl_queue(const Config *c, int argc, char **argv) {
        int opt;

        while ((opt = getopt(argc, argv, "h")) >= 0)
                switch (opt) {
                case 'h':
                        printf("Usage: mtactl queue\n"
                               "       mtactl queue delete|hold|release ID...|ALL\n");
                        return 0;
                default:
                        return 2;
                }
        argc -= optind;
        argv += optind;

        if (argc == 0) {
                int r = mailq_print(stdout, queue_dir_of(c));
                fflush(stdout);
                if (r < 0) {
                        fprintf(stderr, "mtactl: cannot read the queue in %s: %s\n", queue_dir_of(c), strerror(-r));
                        return 1;
                }
                return 0;
        }
        Action a;
        if (streq(argv[0], "delete"))
                a = ACTION_DELETE;
        else if (streq(argv[0], "hold"))
                a = ACTION_HOLD;
        else if (streq(argv[0], "release"))
                a = ACTION_RELEASE;
        else {
                fprintf(stderr, "mtactl: queue: unknown action \"%s\" (delete, hold, release)\n", argv[0]);
                return 2;
        }
        if (argc < 2) {
                fprintf(stderr, "mtactl: queue %s: give queue ids or ALL\n", argv[0]);
                return 2;
        }
        _cleanup_strv_free_ char **ids = NULL;
        for (int i = 1; i < argc; i++)
                if (strv_extend(&ids, argv[i]) < 0)
                        return 1;
        if (strv_length(ids) > 1 && strv_contains(ids, "ALL")) {
                fprintf(stderr, "mtactl: queue %s: ALL stands alone\n", argv[0]);
                return 2;
        }
        return queue_action(c, a, ids);
}

static int find_queue_runner(char *buf, size_t size) {
        static const char *const build_tree[] = { "../../services/queue/mta-queue", NULL };
        return sibling_find("mta-queue", build_tree, buf, size);
}

int ctl_flush(const Config *c, int argc, char **argv) {
        _cleanup_strv_free_ char **ids = NULL;
        const char *qd = queue_dir_of(c);
        size_t n = 0;
        int r;

        if (argc > 1) {
                fprintf(stderr, "mtactl: flush takes no arguments\n");
                return 2;
        }
        /* Make every deferred message due, so whichever runner comes next (the one started below, or
         * one already running) takes them all. A message being delivered right now is skipped. */
        r = queue_list(qd, QUEUE_DEFERRED, &ids);
        if (r < 0) {
                fprintf(stderr, "mtactl: cannot list %s/deferred: %s\n", qd, strerror(-r));
                return 1;
        }
        uint64_t now = (uint64_t) time(NULL);
        for (char **i = ids; i && *i; i++) {
                _cleanup_(queue_file_freep) QueueFile *f = NULL;
                if (queue_file_open_id(qd, QUEUE_DEFERRED, *i, O_RDWR, true, &f) < 0)
                        continue;
                if (f->next_attempt > now &&
                    (queue_file_set_schedule(f, now, f->attempts) < 0 || queue_file_sync(f) < 0)) {
                        fprintf(stderr, "mtactl: %s: cannot reschedule\n", *i);
                        continue;
                }
                n++;
        }

        if (sd_booted() > 0) {
                char *cmd[] = { (char *) "systemctl", (char *) "start", (char *) "--no-block",
                                (char *) "mta-queue.service", NULL };
                r = run_program(cmd, NULL, 0);
                if (r != 0) {
                        fprintf(stderr, "mtactl: systemctl start mta-queue.service failed\n");
                        return 1;
                }
                return 0;
        }

        char path[PATH_MAX];
        (void) find_queue_runner(path, sizeof path);
        char *cmd[] = { path, (char *) "-c", (char *) config_dir(c), (char *) "-f", NULL };
        r = run_program(cmd, NULL, 0);
        if (r < 0) {
                fprintf(stderr, "mtactl: cannot run %s: %s\n", path, strerror(-r));
                return 1;
        }
        return r == 0 ? 0 : 1;
}

int ctl_status(const Config *c, int argc, char **argv) {
        static const char *units[] = { "mta.socket", "mta-submit.socket", "mta-local.socket",
                                       "mta-queue.path", "mta-queue.timer", "mta-queue.service" };
        size_t counts[_QUEUE_DIR_MAX];
        int ret = 0, r;

        if (argc > 1) {
                fprintf(stderr, "mtactl: status takes no arguments\n");
                return 2;
        }
        if (sd_booted() > 0) {
                for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                        char state[64] = "";
                        char *cmd[] = { (char *) "systemctl", (char *) "is-active", (char *) units[i], NULL };
                        r = run_program(cmd, state, sizeof state);
                        printf("%-20s %s\n", units[i], r < 0 || state[0] == 0 ? "unknown" : state);
                        if (i == 0 && !streq(state, "active"))
                                ret = 1;
                }
        } else
                printf("%-20s %s\n", "systemd", "not running (unit states not available)");

        r = mailq_count(queue_dir_of(c), counts);
        if (r < 0) {
                fprintf(stderr, "mtactl: cannot read the queue in %s: %s\n", queue_dir_of(c), strerror(-r));
                return 1;
        }
        static const QueueDir shown[] = { QUEUE_INCOMING, QUEUE_NEW, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT };
        printf("queue %s:", queue_dir_of(c));
        for (size_t i = 0; i < ELEMENTSOF(shown); i++)
                printf(" %s %zu%s", queue_dir_name(shown[i]), counts[shown[i]], i + 1 < ELEMENTSOF(shown) ? "," : "");
        printf("\n");
        return ret;
}
