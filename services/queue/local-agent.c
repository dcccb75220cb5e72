/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/sibling.h"
#include "services/queue/local-agent.h"

struct LocalAgent {
        char *config_dir;
        unsigned timeout_sec;
        int fd;
        pid_t pid;
        bool spawned_once;
};

void local_result_done(LocalResult *r) {
        free(r->forward_text);
        *r = (LocalResult) {};
}

/* How long to wait for mta-local's reply: it may spend the command time limit plus its whole wait
 * for the mailbox lock on one request, and giving up earlier would deliver the message twice. */
unsigned local_agent_timeout(const Config *config) {
        uint64_t command = 1000, delay = 1, t;
        int64_t attempts = 20;

        (void) config_get_time(config, "command_time_limit", &command);
        (void) config_get_time(config, "deliver_lock_delay", &delay);
        (void) config_get_int(config, "deliver_lock_attempts", &attempts);
        if (attempts < 0)
                attempts = 0;
        t = command + (uint64_t) attempts * delay + 60;
        return t > INT_MAX / 1000 ? INT_MAX / 1000 : (unsigned) t;
}

int local_agent_new(const char *config_dir, unsigned timeout_sec, LocalAgent **ret) {
        LocalAgent *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->config_dir = strdup(config_dir);
        if (!a->config_dir) {
                free(a);
                return -ENOMEM;
        }
        a->timeout_sec = timeout_sec > 0 ? timeout_sec : 1000;
        a->fd = -EBADF;
        a->pid = 0;
        *ret = a;
        return 0;
}

static void agent_disconnect(LocalAgent *a) {
        a->fd = safe_close(a->fd);
        if (a->pid > 0) {
                /* Closing the socket makes mta-local finish; wait for it so no zombie is left. */
                int status;
                pid_t p;
                do
                        p = waitpid(a->pid, &status, 0);
                while (p < 0 && errno == EINTR);
                a->pid = 0;
        }
}

LocalAgent *local_agent_free(LocalAgent *a) {
        if (!a)
                return NULL;
        agent_disconnect(a);
        free(a->config_dir);
        free(a);
        return NULL;
}

static int find_local_binary(char *buf, size_t size) {
        static const char *const build_tree[] = { "../local/mta-local", NULL };
        return sibling_find("mta-local", build_tree, buf, size);
}

int local_agent_spawn(LocalAgent *a) {
        char path[PATH_MAX];
        int sv[2];
        pid_t pid;

        agent_disconnect(a);
        (void) find_local_binary(path, sizeof path);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                int r = negative_errno();
                safe_close(sv[0]);
                safe_close(sv[1]);
                return r;
        }
        if (pid == 0) {
                char pidbuf[32];
                if (sv[1] == 3) {
                        int fl = fcntl(3, F_GETFD);
                        (void) fcntl(3, F_SETFD, fl & ~FD_CLOEXEC);
                } else if (dup2(sv[1], 3) < 0)
                        _exit(127);
                snprintf(pidbuf, sizeof pidbuf, "%d", (int) getpid());
                (void) setenv("LISTEN_FDS", "1", 1);
                (void) setenv("LISTEN_PID", pidbuf, 1);
                (void) unsetenv("LISTEN_FDNAMES");
                (void) signal(SIGPIPE, SIG_DFL);
                char *argv[] = { (char *) "mta-local", (char *) "-c", a->config_dir, NULL };
                if (strchr(path, '/'))
                        execv(path, argv);
                else
                        execvp(path, argv);
                fprintf(stderr, "mta-queue: cannot run %s: %m\n", path);
                _exit(127);
        }
        safe_close(sv[1]);
        a->fd = sv[0];
        a->pid = pid;
        a->spawned_once = true;
        log_debug("Started %s as pid %d.", path, (int) pid);
        return 0;
}

static int agent_connect(LocalAgent *a) {
        const char *path = getenv("MTA_LOCAL_SOCKET");
        char def[sizeof(((struct sockaddr_un *) NULL)->sun_path)];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (isempty(path)) {
                snprintf(def, sizeof def, "%s/local.sock", MTA_RUNSTATEDIR);
                path = def;
        }
        if (strlen(path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return negative_errno();
        a->fd = TAKE_FD(fd);
        return 0;
}

static int agent_ensure(LocalAgent *a) {
        if (a->fd >= 0)
                return 0;
        /* A root runner started its own agent at startup; a new one now would not be root. */
        int r = agent_connect(a);
        if (r >= 0)
                return 0;
        log_debug_errno(r, "No local delivery service listening (%m), starting mta-local.");
        return local_agent_spawn(a);
}

static void result_set(LocalResult *ret, MailStatus status, const char *dsn, const char *text) {
        ret->status = status;
        snprintf(ret->dsn, sizeof ret->dsn, "%s", dsn);
        snprintf(ret->text, sizeof ret->text, "%s", text);
}

/* Reads one reply into *ret; a dead, silent or confused agent is a temporary failure, and the
 * connection is dropped: the replies still owed on it will not come. Returns 0, or -ENOMEM. */
static int receive_reply(LocalAgent *a, char *buf, LocalResult *ret) {
        struct pollfd p = { .fd = a->fd, .events = POLLIN };
        int r;

        do
                r = poll(&p, 1, (int) (a->timeout_sec * 1000u));
        while (r < 0 && errno == EINTR);
        if (r <= 0) {
                agent_disconnect(a);
                result_set(ret, MAIL_TEMPFAIL, "4.3.0", "local delivery agent timed out");
                return 0;
        }
        ssize_t n;
        do
                n = recv(a->fd, buf, LOCAL_PROTO_MAX, 0);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
                agent_disconnect(a);
                result_set(ret, MAIL_TEMPFAIL, "4.3.0", "local delivery agent terminated unexpectedly");
                return 0;
        }
        LocalReply reply;
        buf[n] = 0;
        r = local_reply_decode(buf, (size_t) n, &reply);
        if (r < 0 || !reply.status) {
                agent_disconnect(a);
                result_set(ret, MAIL_TEMPFAIL, "4.3.0", "malformed reply from the local delivery agent");
                return 0;
        }
        const char *text = strempty(reply.text);
        if (streq(reply.status, "ok"))
                result_set(ret, MAIL_OK, reply.dsn ? reply.dsn : "2.0.0", text[0] ? text : "delivered");
        else if (streq(reply.status, "permfail"))
                result_set(ret, MAIL_PERMFAIL, reply.dsn ? reply.dsn : "5.0.0", text);
        else if (streq(reply.status, "forward")) {
                result_set(ret, MAIL_OK, reply.dsn ? reply.dsn : "2.0.0", text);
                ret->forward = true;
                ret->forward_text = strdup(strempty(reply.forward));
                if (!ret->forward_text)
                        return -ENOMEM;
        } else
                result_set(ret, MAIL_TEMPFAIL, reply.dsn ? reply.dsn : "4.0.0", text[0] ? text : "temporary failure");
        return 0;
}

int local_agent_deliver_many(LocalAgent *a, const LocalRequest *reqs, const int *queue_fds, size_t n,
                             LocalResult *ret) {
        _cleanup_free_ char *buf = malloc(LOCAL_PROTO_MAX + 1);
        size_t len, sent = 0;
        int r;

        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                ret[i] = (LocalResult) {};

        for (; sent < n; sent++) {
                r = local_request_encode(&reqs[sent], buf, LOCAL_PROTO_MAX, &len);
                if (r < 0) {
                        /* Only a lone request can be answered here without breaking the reply order. */
                        if (sent == 0 && n == 1) {
                                result_set(&ret[0], MAIL_PERMFAIL, "5.3.0", "delivery request too large");
                                return 0;
                        }
                        break;
                }
                for (int attempt = 0; attempt < 2; attempt++) {
                        r = agent_ensure(a);
                        if (r < 0)
                                break;
                        r = local_proto_send_with_fd(a->fd, buf, len, queue_fds[sent]);
                        if (r >= 0)
                                break;
                        /* The agent went away before taking the request (one-shot service or crash).
                         * With nothing sent before on this connection nothing was delivered, so one
                         * new connection is safe; with requests outstanding, their replies are lost. */
                        log_debug_errno(r, "Local delivery agent gone (%m), reconnecting.");
                        agent_disconnect(a);
                        if (sent > 0)
                                break;
                }
                if (r < 0)
                        break;
        }

        /* Replies come in request order. A request never sent, or whose reply did not come, is a
         * temporary failure: the message stays queued; at worst a delivery is repeated. */
        for (size_t i = 0; i < n; i++) {
                if (i < sent && a->fd >= 0) {
                        r = receive_reply(a, buf, &ret[i]);
                        if (r < 0)
                                return r;
                } else if (i < sent)
                        result_set(&ret[i], MAIL_TEMPFAIL, "4.3.0", "local delivery agent terminated unexpectedly");
                else if (n == 1 || i == 0)
                        result_set(&ret[i], MAIL_TEMPFAIL, "4.3.0", "cannot talk to the local delivery agent");
                else
                        result_set(&ret[i], MAIL_TEMPFAIL, "4.3.0", "local delivery request not sent");
        }
        return 0;
}

int local_agent_deliver(LocalAgent *a, const LocalRequest *req, int queue_fd, LocalResult *ret) {
        return local_agent_deliver_many(a, req, &queue_fd, 1, ret);
}
