/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "common/queue.h"
#include "common/strv.h"
#include "services/smtpd/committer.h"
#include "services/smtpd/server.h"
#include "services/smtpd/smtp-session.h"
#include "services/smtpd/smtp-tls.h"

#define READ_CHUNK (16U * 1024U)
#define READS_PER_WAKEUP 4
#define LISTENERS_MAX 16

typedef struct Connection Connection;

typedef struct Listener {
        Server *server;
        int fd;
        bool local;
        sd_event_source *source;
} Listener;

struct Server {
        sd_event *event;
        SmtpSettings *settings;
        ServerOptions options;
        Committer *committer;

        Listener listeners[LISTENERS_MAX];
        size_t n_listeners;

        Connection *connections;
        unsigned n_connections;
        bool accepting_paused;
        sd_event_source *resume_timer;

        sd_event_source *idle_timer, *shutdown_timer, *grace_timer;
        sd_event_source *sigterm, *sigint, *sighup;
        bool shutting_down;
        uint64_t status_usec;

        char scratch[READ_CHUNK];
        uint64_t n_accepted;
};

struct Connection {
        Server *server;
        Connection *prev, *next;
        int fd;
        sd_event_source *io, *timer, *tarpit;
        uint32_t events;
        SmtpSession *session;
        SmtpTls *tls;
        bool want_tls, handshaking;
        size_t tls_send_len;
        char *pending;
        size_t pending_len;
        CommitJob *job;
        uint64_t progress_seen;
        bool counted;              /* subject to the per-client connection limit */
        char address[INET6_ADDRSTRLEN + 1];
};

static void server_update_idle(Server *s);
static void conn_process(Connection *c);

static void server_status(Server *s, bool force) {
        uint64_t now;
        if (!getenv("NOTIFY_SOCKET"))
                return;
        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0)
                now = 0;
        if (!force && now < s->status_usec + 1000000)
                return;
        s->status_usec = now;
        (void) sd_notifyf(false, "STATUS=%s%u sessions, %llu accepted since start",
                          s->shutting_down ? "Shutting down: " : "", s->n_connections,
                          (unsigned long long) s->n_accepted);
}

/* ---- connections ---- */

static void server_pause_accepting(Server *s) {
        for (size_t k = 0; k < s->n_listeners; k++)
                (void) sd_event_source_set_enabled(s->listeners[k].source, SD_EVENT_OFF);
        s->accepting_paused = true;
}

static void server_resume_accepting(Server *s) {
        if (!s->accepting_paused || s->shutting_down || s->n_connections >= s->options.max_sessions)
                return;
        for (size_t i = 0; i < s->n_listeners; i++)
                (void) sd_event_source_set_enabled(s->listeners[i].source, SD_EVENT_ON);
        s->accepting_paused = false;
}

static int on_resume_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        server_resume_accepting(userdata);
        return 0;
}

static Connection *conn_free(Connection *c) {
        if (!c)
                return NULL;
        Server *s = c->server;
        if (c->job)
                c->job->userdata = NULL;    /* the commit completes without us */
        smtp_session_free(c->session);
        if (c->tls)
                smtp_tls_free(c->tls);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        sd_event_source_disable_unref(c->tarpit);
        safe_close(c->fd);
        free(c->pending);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_connections--;
        free(c);

        server_resume_accepting(s);
        server_status(s, false);
        server_update_idle(s);
        return NULL;
}

static void session_commit(SmtpSession *session, QueueWriter *w, void *userdata) {
        Connection *c = userdata;
        int r = committer_submit(c->server->committer, w, c->server->settings->queue_dir, c, &c->job);
        if (r < 0) {
                c->job = NULL;
                smtp_session_commit_done(session, r);
        }
}

static void session_starttls(SmtpSession *session, void *userdata) {
        Connection *c = userdata;
        c->want_tls = true;
}

static const SmtpSessionOps session_ops = {
        .commit = session_commit,
        .starttls = session_starttls,
};

/* 0 when done or blocked, negative when the connection is dead. */
static int conn_flush(Connection *c) {
        for (;;) {
                size_t len;
                const char *out = smtp_session_output(c->session, &len);
                if (len == 0)
                        return 0;
                ssize_t n;
                if (c->tls && !c->handshaking) {
                        if (c->tls_send_len == 0)
                                c->tls_send_len = len < 16384 ? len : 16384;
                        n = smtp_tls_send(c->tls, out, c->tls_send_len);
                        if (n == -EAGAIN)
                                return 0;
                        c->tls_send_len = 0;
                        if (n < 0)
                                return (int) n;
                } else {
                        n = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        return 0;
                                return negative_errno();
                        }
                }
                smtp_session_output_consumed(c->session, (size_t) n);
        }
}

static ssize_t conn_recv(Connection *c, void *buf, size_t len) {
        if (c->tls && !c->handshaking)
                return smtp_tls_recv(c->tls, buf, len);
        ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : negative_errno();
        return n;
}

static void conn_feed(Connection *c, const char *data, size_t len) {
        size_t used = smtp_session_feed(c->session, data, len);
        if (used >= len)
                return;
        /* Paused (commit in flight) or the client is not reading replies: keep the rest. */
        char *p = malloc(len - used);
        if (!p) {
                smtp_session_eof(c->session);
                return;
        }
        memcpy(p, data + used, len - used);
        c->pending = p;
        c->pending_len = len - used;
}

static int on_tarpit(sd_event_source *es, uint64_t usec, void *userdata) {
        Connection *c = userdata;
        c->tarpit = sd_event_source_disable_unref(c->tarpit);
        conn_process(c);
        return 0;
}

static void conn_update(Connection *c) {
        Server *s = c->server;
        size_t out_len;
        uint32_t ev = 0;

        (void) smtp_session_output(c->session, &out_len);
        if (c->handshaking)
                ev = smtp_tls_wants_write(c->tls) ? EPOLLOUT : EPOLLIN;
        else {
                if (out_len > 0 || c->tls_send_len > 0)
                        ev |= EPOLLOUT;
                if (smtp_session_wants_input(c->session) && !c->pending && !c->want_tls)
                        ev |= EPOLLIN;
        }
        if (!c->tarpit && smtp_session_take_tarpit(c->session)) {
                /* Too many errors: the next command waits smtpd_error_sleep_time. */
                if (sd_event_add_time_relative(s->event, &c->tarpit, CLOCK_MONOTONIC, s->settings->error_sleep_usec,
                                               0, on_tarpit, c) < 0)
                        c->tarpit = NULL;
                ev &= ~(uint32_t) EPOLLIN;
        }
        if (c->tarpit)
                ev &= ~(uint32_t) EPOLLIN;
        if (ev != c->events) {
                if (sd_event_source_set_io_events(c->io, ev) >= 0)
                        c->events = ev;
        }

        uint64_t p = smtp_session_progress(c->session);
        if (p != c->progress_seen) {
                uint64_t now;
                c->progress_seen = p;
                if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) >= 0)
                        (void) sd_event_source_set_time(c->timer, now + s->settings->timeout_usec);
        }
}

static void conn_process(Connection *c) {
        unsigned reads = 0;
        int r;

        for (;;) {
                r = conn_flush(c);
                if (r < 0) {
                        smtp_session_eof(c->session);
                        conn_free(c);
                        return;
                }
                size_t out_len;
                (void) smtp_session_output(c->session, &out_len);

                if (c->want_tls && out_len == 0) {
                        c->want_tls = false;
                        free(c->pending);
                        c->pending = NULL;
                        c->pending_len = 0;
                        r = smtp_tls_new(c->server->settings->tls ? c->server->settings->tls : NULL, c->fd, &c->tls);
                        if (r < 0) {
                                smtp_session_tls_done(c->session, NULL);
                                continue;
                        }
                        c->handshaking = true;
                }
                if (c->handshaking) {
                        r = smtp_tls_handshake(c->tls);
                        if (r == -EAGAIN)
                                break;
                        c->handshaking = false;
                        if (r < 0) {
                                /* Nothing more can be said in clear text after a failed handshake. */
                                smtp_session_tls_done(c->session, NULL);
                                conn_free(c);
                                return;
                        }
                        smtp_session_tls_done(c->session, smtp_tls_description(c->tls));
                        continue;
                }
                if (smtp_session_closing(c->session)) {
                        if (out_len == 0 && c->tls_send_len == 0) {
                                if (c->tls)
                                        smtp_tls_bye(c->tls);
                                conn_free(c);
                                return;
                        }
                        break;
                }
                if (!smtp_session_wants_input(c->session) || c->tarpit)
                        break;
                if (c->pending) {
                        _cleanup_free_ char *p = c->pending;
                        size_t len = c->pending_len;
                        c->pending = NULL;
                        c->pending_len = 0;
                        conn_feed(c, p, len);
                        continue;
                }
                bool tls_buffered = c->tls && smtp_tls_pending(c->tls) > 0;
                if (reads >= READS_PER_WAKEUP && !tls_buffered)
                        break;     /* fairness: level-triggered epoll brings us back */
                ssize_t n = conn_recv(c, c->server->scratch, sizeof c->server->scratch);
                reads++;
                if (n == -EAGAIN)
                        break;
                if (n <= 0) {
                        smtp_session_eof(c->session);
                        conn_free(c);
                        return;
                }
                conn_feed(c, c->server->scratch, (size_t) n);
        }
        conn_update(c);
}

static int on_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;
        if ((revents & (EPOLLERR | EPOLLHUP)) && !(revents & EPOLLIN)) {
                smtp_session_eof(c->session);
                conn_free(c);
                return 0;
        }
        conn_process(c);
        return 0;
}

static int on_conn_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Connection *c = userdata;
        Server *s = c->server;

        if (smtp_session_closing(c->session)) {
                /* The client does not even read our last words. */
                conn_free(c);
                return 0;
        }
        if (c->handshaking) {
                smtp_session_tls_done(c->session, NULL);
                conn_free(c);
                return 0;
        }
        if (smtp_session_committing(c->session)) {
                (void) sd_event_source_set_time(es, usec + s->settings->timeout_usec);
                (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
                return 0;
        }
        smtp_session_timeout(c->session);
        /* A short grace period to deliver the 421. */
        (void) sd_event_source_set_time(es, usec + 10 * 1000000ULL);
        (void) sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
        c->progress_seen = smtp_session_progress(c->session);
        conn_process(c);
        return 0;
}

static void commit_done(CommitJob *job, void *userdata) {
        Server *s = userdata;
        Connection *c = job->userdata;
        if (!c) {
                server_update_idle(s);
                return;
        }
        c->job = NULL;
        smtp_session_commit_done(c->session, job->result);
        conn_process(c);
}

static void peer_from_sockaddr(const struct sockaddr_storage *sa, char *buf, size_t size) {
        const void *addr = NULL;
        int family = sa->ss_family;

        if (family == AF_INET)
                addr = &((const struct sockaddr_in *) sa)->sin_addr;
        else if (family == AF_INET6) {
                const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;
                if (IN6_IS_ADDR_V4MAPPED(a6)) {
                        family = AF_INET;
                        addr = &a6->s6_addr[12];
                } else
                        addr = a6;
        }
        if (!addr || !inet_ntop(family, addr, buf, (socklen_t) size))
                snprintf(buf, size, "unknown");
}

static int conn_new(Server *s, int fd, bool local, const struct sockaddr_storage *sa) {
        Connection *c;
        char address[INET6_ADDRSTRLEN + 1] = "local";
        char login_buf[256];
        SmtpPeer peer = { .address = address, .name = "unknown" };
        int r;

        c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->server = s;
        c->fd = fd;
        c->next = s->connections;
        if (c->next)
                c->next->prev = c;
        s->connections = c;
        s->n_connections++;
        s->n_accepted++;
        if (s->idle_timer)
                (void) sd_event_source_set_enabled(s->idle_timer, SD_EVENT_OFF);

        if (local) {
                struct ucred cred;
                socklen_t l = sizeof cred;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0) {
                        r = negative_errno();
                        conn_free(c);
                        return r;
                }
                peer.local = true;
                peer.uid = cred.uid;
                peer.name = "localhost";
                struct passwd pw, *pwp = NULL;
                if (getpwuid_r(cred.uid, &pw, login_buf, sizeof login_buf, &pwp) == 0 && pwp)
                        peer.login = pwp->pw_name;
        } else {
                int one = 1;
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                peer_from_sockaddr(sa, address, sizeof address);
                peer.in_mynetworks = netlist_match(s->settings->mynetworks, (const struct sockaddr *) sa);
        }

        r = smtp_session_new(s->settings, &peer, &session_ops, c, &c->session);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        c->events = EPOLLIN;
        uint64_t now;
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, now + s->settings->timeout_usec,
                              1000000ULL, on_conn_timer, c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        unsigned same = 0;
        if (!local && !peer.in_mynetworks && s->settings->client_connection_limit > 0) {
                c->counted = true;
                memcpy(c->address, address, sizeof c->address);
                for (Connection *o = s->connections; o; o = o->next)
                        if (o != c && o->counted && streq(o->address, c->address))
                                same++;
        }
        if (same >= s->settings->client_connection_limit && c->counted) {
                char why[sizeof address + 64];
                snprintf(why, sizeof why, "too many connections from %s", address);
                c->counted = false;
                smtp_session_start_refused(c->session, why);
        } else
                smtp_session_start(c->session);
        server_status(s, false);
        conn_process(c);
        return 0;
}

static int on_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        Server *s = l->server;

        for (unsigned i = 0; i < 64; i++) {
                struct sockaddr_storage sa = {};
                socklen_t salen = sizeof sa;
                int cfd = accept4(fd, (struct sockaddr *) &sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        if (errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        int e = negative_errno();
                        if (e == -EMFILE || e == -ENFILE || e == -ENOBUFS || e == -ENOMEM) {
                                /* Out of file descriptors or memory: the listening socket stays
                                 * readable, so accepting again at once would spin. Clients wait in
                                 * the backlog until a session ends or a short pause is over. */
                                uint64_t now;
                                log_warning_errno(e, "accept() failed, pausing new sessions: %m");
                                server_pause_accepting(s);
                                if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) >= 0) {
                                        s->resume_timer = sd_event_source_disable_unref(s->resume_timer);
                                        (void) sd_event_add_time(s->event, &s->resume_timer, CLOCK_MONOTONIC,
                                                                 now + 200 * 1000, 0, on_resume_timer, s);
                                }
                                break;
                        }
                        log_warning_errno(e, "accept() failed: %m");
                        break;
                }
                int r = conn_new(s, cfd, l->local, &sa);
                if (r < 0)
                        log_warning_errno(r, "Cannot set up connection: %m");
                if (s->n_connections >= s->options.max_sessions) {
                        /* Leave further clients in the kernel's backlog until a session ends. */
                        server_pause_accepting(s);
                        break;
                }
        }
        return 0;
}

/* ---- the process ---- */

static void server_update_idle(Server *s) {
        unsigned busy = s->n_connections + (s->committer ? committer_in_flight(s->committer) : 0);
        if (busy > 0)
                return;
        if (s->shutting_down) {
                (void) sd_event_exit(s->event, 0);
                return;
        }
        if (s->idle_timer) {
                uint64_t now;
                (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
                (void) sd_event_source_set_time(s->idle_timer, now + s->options.idle_usec);
                (void) sd_event_source_set_enabled(s->idle_timer, SD_EVENT_ONESHOT);
        }
}

static int on_idle(sd_event_source *es, uint64_t usec, void *userdata) {
        Server *s = userdata;
        if (s->n_connections > 0 || committer_in_flight(s->committer) > 0)
                return 0;
        log_debug("Idle, exiting.");
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Idle, exiting");
        return sd_event_exit(s->event, 0);
}

static int on_shutdown_timeout(sd_event_source *es, uint64_t usec, void *userdata) {
        Server *s = userdata;
        log_notice("Sessions still open after the shutdown timeout, closing %u of them.", s->n_connections);
        while (s->connections) {
                smtp_session_eof(s->connections->session);
                conn_free(s->connections);
        }
        return sd_event_exit(s->event, 0);
}

static int on_shutdown_grace(sd_event_source *es, uint64_t usec, void *userdata) {
        Server *s = userdata;
        for (Connection *c = s->connections, *next; c; c = next) {
                next = c->next;
                smtp_session_shutdown(c->session);
                conn_process(c);     /* may free c */
        }
        server_update_idle(s);
        return 0;
}

static int on_sigterm(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Server *s = userdata;

        if (s->shutting_down)
                return 0;
        s->shutting_down = true;
        (void) sd_notify(false, "STOPPING=1");
        server_status(s, true);
        for (size_t i = 0; i < s->n_listeners; i++)
                (void) sd_event_source_set_enabled(s->listeners[i].source, SD_EVENT_OFF);
        uint64_t now;
        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        (void) sd_event_add_time(s->event, &s->shutdown_timer, CLOCK_MONOTONIC, now + s->options.shutdown_usec, 0,
                                 on_shutdown_timeout, s);
        /* A restart under load must not turn away a client that has just been greeted: sessions go
         * on as usual for a short grace, which is enough for any client that is actually sending;
         * only then are idle sessions told 421 and busy ones closed after their transaction. */
        if (s->options.shutdown_grace_usec == 0 ||
            sd_event_add_time(s->event, &s->grace_timer, CLOCK_MONOTONIC, now + s->options.shutdown_grace_usec, 0,
                              on_shutdown_grace, s) < 0)
                (void) on_shutdown_grace(NULL, 0, s);
        server_update_idle(s);
        return 0;
}

static int on_sighup(sd_event_source *es, const struct signalfd_siginfo *si, void *userdata) {
        Server *s = userdata;
        _cleanup_free_ char *err = NULL;
        SmtpSettings *n = NULL;

        (void) sd_notify(false, "RELOADING=1");
        int r = smtp_settings_load(s->options.config_dir, s->settings, &n, &err);
        if (r < 0)
                log_error_errno(r, "Reload failed, keeping the old configuration: %s", err ? err : "%m");
        else {
                smtp_settings_unref(s->settings);
                s->settings = n;
                log_info("Configuration reloaded; new sessions use it.");
        }
        (void) sd_notify(false, "READY=1");
        return 0;
}

/* A session holds its socket and, while it receives a message, its queue file. We take the hard
 * limit on descriptors (we use no select()) and never admit more sessions than fit in it, so a
 * crowd of clients waits in the backlog instead of making accept() or open() fail. */
static unsigned sessions_within_fd_limit(unsigned wanted) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return wanted;
        if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
                (void) getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur == RLIM_INFINITY)
                return wanted;
        rlim_t fit = rl.rlim_cur > 160 ? (rl.rlim_cur - 64) / 2 : 48;
        return fit < wanted ? (unsigned) fit : wanted;
}

int server_new(sd_event *e, SmtpSettings *settings, const ServerOptions *options, Server **ret) {
        Server *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->settings = smtp_settings_ref(settings);
        s->options = *options;
        s->options.max_sessions = sessions_within_fd_limit(s->options.max_sessions);
        if (s->options.max_sessions == 0)
                s->options.max_sessions = 1;
        *ret = s;
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->connections)
                conn_free(s->connections);
        committer_free(s->committer);
        for (size_t i = 0; i < s->n_listeners; i++) {
                sd_event_source_disable_unref(s->listeners[i].source);
                safe_close(s->listeners[i].fd);
        }
        sd_event_source_disable_unref(s->idle_timer);
        sd_event_source_disable_unref(s->shutdown_timer);
        sd_event_source_disable_unref(s->grace_timer);
        sd_event_source_disable_unref(s->resume_timer);
        sd_event_source_disable_unref(s->sigterm);
        sd_event_source_disable_unref(s->sigint);
        sd_event_source_disable_unref(s->sighup);
        smtp_settings_unref(s->settings);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

int server_add_listener(Server *s, int fd, bool local) {
        if (s->n_listeners >= LISTENERS_MAX)
                return log_error_errno(-E2BIG, "Too many listening sockets.");
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return log_error_errno(negative_errno(), "Cannot make socket %d non-blocking: %m", fd);
        Listener *l = &s->listeners[s->n_listeners];
        *l = (Listener) { .server = s, .fd = fd, .local = local };
        int r = sd_event_add_io(s->event, &l->source, fd, EPOLLIN, on_accept, l);
        if (r < 0)
                return log_error_errno(r, "Cannot watch socket %d: %m", fd);
        s->n_listeners++;
        return 0;
}

int server_take_listen_fds(Server *s) {
        _cleanup_strv_free_ char **names = NULL;
        int n, r;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Cannot take sockets from systemd: %m");
        if (n == 0)
                return log_error_errno(-EBADF, "No listening sockets passed; run from mta.socket or "
                                       "systemd-socket-activate.");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";
                bool local;

                if (streq(name, "submit")) {
                        local = true;
                        r = sd_is_socket(fd, AF_UNIX, SOCK_STREAM, 1);
                } else if (streq(name, "smtp") || streq(name, "unknown") || streq(name, "")) {
                        local = false;
                        r = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0);
                } else
                        return log_error_errno(-EINVAL, "Unexpected socket \"%s\" passed (expected \"smtp\" "
                                               "or \"submit\").", name);
                if (r <= 0)
                        return log_error_errno(r < 0 ? r : -EINVAL, "Socket \"%s\" (fd %d) is not a listening %s "
                                               "stream socket.", name, fd, local ? "unix" : "TCP");
                r = server_add_listener(s, fd, local);
                if (r < 0)
                        return r;
        }
        return 0;
}

int server_run(Server *s) {
        sigset_t ss;
        int r;

        r = queue_dirs_ensure(s->settings->queue_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot set up queue directory %s: %m", s->settings->queue_dir);
        /* Blocked before the committer thread exists, so that it inherits the mask and every signal
         * reaches the event loop's signalfd. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        r = committer_new(s->event, (CommitMode) s->options.commit_mode, s->settings->queue_dir, commit_done, s,
                          &s->committer);
        if (r < 0)
                return log_error_errno(r, "Cannot start the committer thread: %m");
        if ((r = sd_event_add_signal(s->event, &s->sigterm, SIGTERM, on_sigterm, s)) < 0 ||
            (r = sd_event_add_signal(s->event, &s->sigint, SIGINT, on_sigterm, s)) < 0 ||
            (r = sd_event_add_signal(s->event, &s->sighup, SIGHUP, on_sighup, s)) < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        if (s->options.idle_usec > 0) {
                r = sd_event_add_time_relative(s->event, &s->idle_timer, CLOCK_MONOTONIC, s->options.idle_usec,
                                               1000000ULL, on_idle, s);
                if (r < 0)
                        return log_error_errno(r, "Cannot arm idle timer: %m");
        }
        (void) sd_event_set_watchdog(s->event, true);

        (void) sd_notify(false, "READY=1");
        server_status(s, true);
        r = sd_event_loop(s->event);
        /* Commits in flight finish before we go: a 250 may be owed. */
        s->committer = committer_free(s->committer);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}
