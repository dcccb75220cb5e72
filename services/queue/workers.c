/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/queue.h"
#include "common/strv.h"
#include "services/queue/workers.h"

#define WORKERS_MAX 4
#define BACKLOG_PER_WORKER 16

unsigned workers_count(const char *queue_dir, bool flush, bool only_ids) {
        size_t backlog = 0;
        if (only_ids)
                return 1;
        /* For tests and measurements. */
        const char *e = getenv("MTA_QUEUE_WORKERS");
        if (e && *e) {
                unsigned long v = strtoul(e, NULL, 10);
                return v < 1 ? 1 : v > WORKERS_MAX ? WORKERS_MAX : (unsigned) v;
        }
        for (QueueDir d = QUEUE_NEW; d <= QUEUE_DEFERRED; d++) {
                _cleanup_strv_free_ char **ids = NULL;
                if (d == QUEUE_DEFERRED && !flush)
                        break;
                if (queue_list(queue_dir, d, &ids) >= 0)
                        backlog += strv_length(ids);
        }
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned max = cpus < 2 ? 2 : cpus > WORKERS_MAX ? WORKERS_MAX : (unsigned) cpus;
        size_t n = backlog / BACKLOG_PER_WORKER;
        if (n < 1)
                n = 1;
        return n > max ? max : (unsigned) n;
}

int workers_start(Workers *w, unsigned n) {
        *w = (Workers) {};
        if (n <= 1)
                return 1;
        w->pids = calloc(n, sizeof(pid_t));
        if (!w->pids)
                return -ENOMEM;
        for (unsigned i = 1; i < n; i++) {
                pid_t pid = fork();
                if (pid < 0)
                        return negative_errno();   /* the ones started so far still work */
                if (pid == 0) {
                        free(w->pids);
                        *w = (Workers) {};
                        return 0;
                }
                w->pids[w->n++] = pid;
        }
        return 1;
}

int workers_wait(Workers *w) {
        int worst = 0;
        for (size_t i = 0; i < w->n; i++) {
                int status;
                pid_t p;
                do
                        p = waitpid(w->pids[i], &status, 0);
                while (p < 0 && errno == EINTR);
                int code = p < 0 ? 1 : WIFEXITED(status) ? WEXITSTATUS(status) : 1;
                if (code > worst)
                        worst = code;
        }
        free(w->pids);
        *w = (Workers) {};
        return worst;
}
