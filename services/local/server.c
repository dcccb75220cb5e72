/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "common/macro.h"
#include "services/local/server.h"

int local_server_check_peer(int fd, uid_t mail_owner) {
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (cred.uid == 0 || cred.uid == geteuid() || cred.uid == mail_owner)
                return 0;
        return -EPERM;
}

static const char *status_word(const LocalOutcome *o) {
        if (o->forward)
                return "forward";
        return o->status == MAIL_OK ? "ok" : o->status == MAIL_TEMPFAIL ? "tempfail" : "permfail";
}

static void log_outcome(const LocalRequest *req, const LocalOutcome *o, uint64_t size) {
        /* A ~/.forward is not a delivery: the runner logs what its targets become, so no status. */
        const char *postfix_status = o->forward ? NULL :
                                     o->status == MAIL_OK ? "sent" :
                                     o->status == MAIL_TEMPFAIL ? "deferred" : "bounced";
        char size_s[32];
        snprintf(size_s, sizeof size_s, "%" PRIu64, size);
        LogField f[] = {
                { "MTA_QUEUE_ID", req->queue_id },
                { "MTA_SENDER", req->sender },
                { "MTA_RECIPIENT", req->recipient },
                { "MTA_STATUS", postfix_status },
                { "MTA_RELAY", "local" },
                { "MTA_DSN", o->dsn },
                { "MTA_SIZE", size_s },
        };
        log_event(o->status == MAIL_OK ? LOG_INFO : LOG_WARNING, f, ELEMENTSOF(f),
                  "%s: to=<%s>, orig_to=<%s>, relay=local, dsn=%s, status=%s (%s)", strempty(req->queue_id),
                  strempty(req->recipient), strempty(req->original ? req->original : req->recipient), o->dsn,
                  postfix_status ? postfix_status : "forward", o->text);
}

int local_server_receive(int fd, char *buf, size_t size, size_t *ret_len, int *ret_fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 4)];
        } control = {};
        struct iovec iov = { .iov_base = buf, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        ssize_t n;
        int got = -EBADF, extra = 0;

        do
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fds = (int *) CMSG_DATA(c);
                for (size_t i = 0; i < nfd; i++) {
                        if (got < 0)
                                got = fds[i];
                        else {
                                safe_close(fds[i]);
                                extra++;
                        }
                }
        }
        if (n == 0 && got < 0)
                return 0;
        if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || extra > 0) {
                safe_close(got);
                got = -EBADF;
                *ret_len = SIZE_MAX;
        } else
                *ret_len = (size_t) n;
        *ret_fd = got;
        return 1;
}

static int send_reply(int fd, const LocalOutcome *o) {
        _cleanup_free_ char *buf = malloc(LOCAL_PROTO_MAX);
        LocalReply rep = {
                .status = status_word(o),
                .dsn = o->dsn,
                .text = o->text,
                .forward = o->forward ? o->forward_text : NULL,
        };
        size_t len;
        int r;

        if (!buf)
                return -ENOMEM;
        r = local_reply_encode(&rep, buf, LOCAL_PROTO_MAX, &len);
        if (r < 0) {
                /* A ~/.forward too big for one datagram: defer rather than lose it. */
                LocalReply t = { .status = "tempfail", .dsn = "4.3.0", .text = "reply too large" };
                r = local_reply_encode(&t, buf, LOCAL_PROTO_MAX, &len);
                if (r < 0)
                        return r;
        }
        if (send(fd, buf, len, MSG_NOSIGNAL) < 0)
                return negative_errno();
        return 0;
}

/* Pipelining: while the runner has the next request ready, a request for a worker is sent on
 * without waiting for its reply, so the worker sees several at once and can commit them together
 * (mta-local(8)). The replies are collected in request order before anything else is done. */
/* Never more outstanding than a unix datagram socket is sure to queue (net.unix.max_dgram_qlen is
 * 10 by default): more, and we could block sending to a worker that blocks sending us replies. */
#define PIPELINE_MAX 8

typedef struct Outstanding {
        char *raw;                    /* the request datagram; req points into it */
        LocalRequest req;
        LocalJob *job;
} Outstanding;

typedef struct Pipeline {
        Outstanding q[PIPELINE_MAX];
        size_t n;
} Pipeline;

bool local_server_readable_now(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r;

        do
                r = poll(&p, 1, 0);
        while (r < 0 && errno == EINTR);
        return r > 0;
}

static void failed_outcome(LocalOutcome *o, int r) {
        *o = (LocalOutcome) { .status = MAIL_TEMPFAIL, .dsn = "4.3.0" };
        snprintf(o->text, sizeof o->text, "local delivery failed: %s", strerror(-r));
}

/* Reads the outstanding replies in order and relays them. Every one is collected even when the
 * runner is gone; the first failure to send is returned. */
static int pipeline_flush(Pipeline *p, int fd) {
        int ret = 0, r;

        for (size_t i = 0; i < p->n; i++) {
                Outstanding *e = &p->q[i];
                LocalOutcome o = {};

                r = local_job_finish(e->job, &o);
                if (r < 0)
                        failed_outcome(&o, r);
                log_outcome(&e->req, &o, e->req.size);
                if (ret == 0 && (r = send_reply(fd, &o)) < 0)
                        ret = r;
                local_outcome_done(&o);
                e->job = local_job_free(e->job);
                free(e->raw);
                e->raw = NULL;
        }
        p->n = 0;
        if (ret < 0)
                return log_error_errno(ret, "Failed to send a reply: %m");
        return 0;
}

static int serve(int fd, const LocalSettings *s, char *buf) {
        Pipeline p = {};

        for (;;) {
                _cleanup_close_ int queue_fd = -EBADF;
                _cleanup_free_ char *raw = NULL;
                LocalJob *job = NULL;
                LocalOutcome o = {};
                LocalRequest req = {};
                bool decoded = false;
                size_t len = 0;
                int r;

                r = local_server_receive(fd, buf, LOCAL_PROTO_MAX + 1, &len, &queue_fd);
                if (r <= 0) {
                        int k = pipeline_flush(&p, fd);
                        if (r < 0)
                                return log_error_errno(r, "Failed to receive a request: %m");
                        return k;
                }

                /* A copy to decode: the request may have to wait for its reply in the pipeline. */
                if (len <= LOCAL_PROTO_MAX) {
                        raw = malloc(len + 1);
                        if (!raw) {
                                (void) pipeline_flush(&p, fd);
                                return log_oom();
                        }
                        memcpy(raw, buf, len);
                }
                if (len > LOCAL_PROTO_MAX || local_request_decode(raw, len, &req) < 0) {
                        log_error("Malformed request from the queue runner.");
                        o = (LocalOutcome) { .status = MAIL_TEMPFAIL, .dsn = "4.3.5",
                                             .text = "malformed request" };
                } else if (queue_fd < 0) {
                        log_error("Request without a queue file.");
                        o = (LocalOutcome) { .status = MAIL_TEMPFAIL, .dsn = "4.3.5",
                                             .text = "request without a queue file" };
                } else {
                        decoded = true;
                        r = local_job_prepare(s, &req, queue_fd, &job, &o);
                        if (r < 0)
                                failed_outcome(&o, r);
                }

                if (job && local_job_by_worker(job)) {
                        if (p.n > 0 && !local_job_same_worker(p.q[p.n - 1].job, job) &&
                            pipeline_flush(&p, fd) < 0) {
                                local_job_free(job);
                                return -EPIPE;
                        }
                        r = local_job_send(job);
                        if (r >= 0) {
                                p.q[p.n++] = (Outstanding) { .raw = TAKE_PTR(raw), .req = req, .job = job };
                                /* Wait for the replies only when the runner has nothing more for now. */
                                if ((p.n == PIPELINE_MAX || !local_server_readable_now(fd)) && pipeline_flush(&p, fd) < 0)
                                        return -EPIPE;
                                continue;
                        }
                        failed_outcome(&o, r);
                        job = local_job_free(job);
                }

                /* Anything else waits until the replies before it are out. */
                if (pipeline_flush(&p, fd) < 0) {
                        local_job_free(job);
                        return -EPIPE;
                }
                if (job) {
                        r = local_job_finish(job, &o);
                        if (r < 0)
                                failed_outcome(&o, r);
                        job = local_job_free(job);
                }
                if (decoded)
                        log_outcome(&req, &o, req.size);
                r = send_reply(fd, &o);
                local_outcome_done(&o);
                if (r < 0)
                        return log_error_errno(r, "Failed to send a reply: %m");
        }
}

int local_server_run(int fd, const LocalSettings *s) {
        _cleanup_free_ char *buf = malloc(LOCAL_PROTO_MAX + 1);
        int r;

        if (!buf)
                return log_oom();
        /* Load the time zone once here, so that delivery processes inherit it instead of each
         * reading /etc/localtime for the From_ line. */
        tzset();
        r = serve(fd, s, buf);
        /* The workers exit when their socket closes; wait for them before the connection ends. */
        local_deliver_shutdown();
        return r;
}
