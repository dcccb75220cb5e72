/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/privs.h"
#include "tools/sendmail/enqueue.h"

static int write_received(QueueWriter *w, const EnqueueRequest *req) {
        _cleanup_free_ char *hdr = NULL;
        time_t now = time(NULL);
        char date[80];
        struct tm tm;
        int r;

        if (!localtime_r(&now, &tm) ||
            strftime(date, sizeof date, "%a, %e %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
                return -EINVAL;
        if (req->recipients[0] && !req->recipients[1])
                r = asprintf(&hdr, "Received: by %s (mta, from userid %u)\n\tid %s\n\tfor <%s>; %s\n",
                             req->received_by, (unsigned) req->uid, queue_writer_id(w), req->recipients[0],
                             date);
        else
                r = asprintf(&hdr, "Received: by %s (mta, from userid %u)\n\tid %s;\n\t%s\n",
                             req->received_by, (unsigned) req->uid, queue_writer_id(w), date);
        if (r < 0)
                return -ENOMEM;
        return queue_writer_write(w, hdr, strlen(hdr));
}

static void log_queued(const EnqueueRequest *req, const char *id, uint64_t size, size_t n_rcpt) {
        char size_str[32], uid_str[32];

        /* Only to the journal: on stderr this would be mailed back by cron for every job. */
        if (access("/run/systemd/journal/socket", W_OK) < 0)
                return;
        snprintf(size_str, sizeof size_str, "%" PRIu64, size);
        snprintf(uid_str, sizeof uid_str, "%u", (unsigned) req->uid);
        LogField f[] = {
                { "MTA_QUEUE_ID", id },
                { "MTA_SENDER", req->info.sender },
                { "MTA_SIZE", size_str },
                { "MTA_CLIENT", "local" },
        };
        log_setup(NULL, LOG_TARGET_JOURNAL);
        log_event(LOG_INFO, f, ELEMENTSOF(f), "%s: uid=%s from=<%s> size=%s nrcpt=%zu (queued directly)",
                  id, uid_str, req->info.sender, size_str, n_rcpt);
        log_setup(NULL, LOG_TARGET_STDERR);
}

static int enqueue_here(const EnqueueRequest *req, char id[static QUEUE_ID_MAX]) {
        _cleanup_(queue_writer_freep) QueueWriter *w = NULL;
        size_t n = 0;
        int r;

        r = queue_dirs_ensure(req->queue_dir);
        if (r >= 0)
                r = queue_writer_new(req->queue_dir, &w);
        if (r >= 0)
                r = queue_writer_set_envelope(w, &req->info, (uint64_t) time(NULL));
        for (; r >= 0 && req->recipients[n]; n++)
                r = queue_writer_add_recipient(w, req->recipients[n]);
        if (r >= 0 && req->received_by)
                r = write_received(w, req);
        if (r >= 0)
                r = queue_writer_write(w, req->content, req->content_len);
        if (r >= 0)
                r = queue_writer_commit(w);
        if (r < 0) {
                log_error_errno(r, "Cannot write the message into the queue %s: %m", req->queue_dir);
                return r == -ENOMEM ? EX_OSERR : EX_TEMPFAIL;
        }
        snprintf(id, QUEUE_ID_MAX, "%s", queue_writer_id(w));
        log_queued(req, id, queue_writer_size(w), n);
        if (req->verbose)
                fprintf(stderr, "Queued as %s for %zu recipient(s).\n", id, n);
        return EX_OK;
}

int enqueue_message(const EnqueueRequest *req, char *ret_id) {
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        char id[QUEUE_ID_MAX] = "";
        int pipefd[2], status, r;
        ssize_t n;
        pid_t pid;

        if (getuid() != 0) {
                r = enqueue_here(req, id);
                if (r == EX_OK && ret_id)
                        memcpy(ret_id, id, QUEUE_ID_MAX);
                return r;
        }

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return EX_OSERR;
        rfd = pipefd[0];
        wfd = pipefd[1];
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
                log_error_errno(negative_errno(), "Cannot fork: %m");
                return EX_OSERR;
        }
        if (pid == 0) {
                rfd = safe_close(rfd);
                r = privs_drop_to_user(req->mail_owner);
                if (r < 0) {
                        log_error_errno(r, "Cannot switch to mail_owner %s: %m", req->mail_owner);
                        _exit(r == -ESRCH ? EX_CONFIG : EX_OSERR);
                }
                r = enqueue_here(req, id);
                if (r == EX_OK)
                        (void) !write(wfd, id, strlen(id));
                _exit(r);
        }
        wfd = safe_close(wfd);
        do
                n = read(rfd, id, sizeof id - 1);
        while (n < 0 && errno == EINTR);
        id[n > 0 ? n : 0] = '\0';

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return EX_OSERR;
        if (!WIFEXITED(status)) {
                log_error("The queue writer died of signal %d.", WTERMSIG(status));
                return EX_SOFTWARE;
        }
        if (WEXITSTATUS(status) == EX_OK && ret_id)
                memcpy(ret_id, id, QUEUE_ID_MAX);
        return WEXITSTATUS(status);
}
