/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sysexits.h>

#include "common/log.h"
#include "common/macro.h"
#include "tools/sendmail/submit.h"

/* The server is local and answers at once unless it is stuck; this bounds every wait. */
#define SUBMIT_TIMEOUT_SEC 300
#define REPLY_TEXT_MAX 4096

typedef enum Stage {
        STAGE_GREETING,
        STAGE_EHLO,
        STAGE_MAIL,
        STAGE_RCPT,
        STAGE_DATA,
        STAGE_DOT,
} Stage;

typedef struct Conn {
        int fd;
        const char *path;
        bool verbose;
        char buf[8192];
        size_t start, end;
} Conn;

typedef struct Reply {
        int code;
        char dsn[16];
        char text[REPLY_TEXT_MAX];   /* the lines' text after the code, sanitized, joined with '\n' */
} Reply;

const char *submit_socket_path(void) {
        const char *e = getenv("MTA_SUBMIT_SOCKET");
        return isempty(e) ? MTA_RUNSTATEDIR "/submit.sock" : e;
}

int submit_connect(const char *socket_path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = SUBMIT_TIMEOUT_SEC };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(socket_path) >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return negative_errno();
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return TAKE_FD(fd);
}

#define IN_SET(x, a, b) ((x) == (a) || (x) == (b))

static int conn_write(Conn *c, const char *data, size_t n) {
        while (n > 0) {
                ssize_t k = send(c->fd, data, n, MSG_NOSIGNAL);
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

static int conn_command(Conn *c, const char *cmd) {
        char line[1024];
        int n = snprintf(line, sizeof line, "%s\r\n", cmd);

        if (n < 0 || (size_t) n >= sizeof line)
                return -E2BIG;
        if (c->verbose)
                fprintf(stderr, ">>> %s\n", cmd);
        return conn_write(c, line, (size_t) n);
}

/* One line without CR LF into line (cut at size - 1); returns its length, -ECONNRESET at EOF. */
static int conn_read_line(Conn *c, char *line, size_t size) {
        size_t k = 0;

        for (;;) {
                if (c->start == c->end) {
                        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                        if (n == 0)
                                return -ECONNRESET;
                        c->start = 0;
                        c->end = (size_t) n;
                }
                char ch = c->buf[c->start++];
                if (ch == '\n')
                        break;
                if (k + 1 < size)
                        line[k++] = ch;
        }
        if (k > 0 && line[k - 1] == '\r')
                k--;
        line[k] = '\0';
        return (int) k;
}

static int conn_read_reply(Conn *c, Reply *ret) {
        size_t text_len = 0;
        int code = 0;

        *ret = (Reply) {};
        for (unsigned n_lines = 0;; n_lines++) {
                char line[1024];
                int r = conn_read_line(c, line, sizeof line);
                if (r < 0)
                        return r;
                if (c->verbose)
                        fprintf(stderr, "<<< %s\n", line);
                if (r < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
                    line[2] < '0' || line[2] > '9' || (line[3] != '\0' && line[3] != ' ' && line[3] != '-'))
                        return -EBADMSG;
                int this_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
                if (n_lines > 0 && this_code != code)
                        return -EBADMSG;
                if (n_lines >= 100)
                        return -E2BIG;
                code = this_code;

                const char *text = line[3] ? line + 4 : line + 3;
                if (n_lines == 0) {
                        /* Enhanced status code "C.S.D" at the start of the first line. */
                        size_t l = strspn(text, "0123456789.");
                        if (l >= 5 && l < sizeof ret->dsn && text[0] == line[0] && text[1] == '.' &&
                            (text[l] == ' ' || text[l] == '\0')) {
                                memcpy(ret->dsn, text, l);
                                ret->dsn[l] = '\0';
                        }
                }
                for (const char *p = text; *p && text_len + 2 < sizeof ret->text; p++) {
                        unsigned char ch = (unsigned char) *p;
                        ret->text[text_len++] = ch < 32 || ch >= 127 ? '?' : (char) ch;
                }
                if (line[3] != '-')
                        break;
                if (text_len + 2 < sizeof ret->text)
                        ret->text[text_len++] = '\n';
        }
        ret->text[text_len] = '\0';
        ret->code = code;
        return 0;
}

/* The reply on one line, as people quote it: "553 5.7.1 ...". */
static const char *reply_oneline(const Reply *r, char *buf, size_t size) {
        char *p;

        snprintf(buf, size, "%d %s", r->code, r->text);
        while ((p = strchr(buf, '\n')))
                *p = ' ';
        return buf;
}

static int reply_exit_code(const Reply *r, Stage stage) {
        if (r->code / 100 == 4)
                return EX_TEMPFAIL;
        if (strncmp(r->dsn, "5.7.", 4) == 0)
                return EX_NOPERM;
        switch (stage) {
        case STAGE_GREETING:
        case STAGE_EHLO:
                return EX_UNAVAILABLE;
        case STAGE_RCPT:
                return EX_NOUSER;
        default:
                return EX_DATAERR;
        }
}

static int io_exit_code(Conn *c, int r) {
        if (r == -EBADMSG || r == -E2BIG) {
                log_error("Unexpected reply from the submission service at %s.", c->path);
                return EX_PROTOCOL;
        }
        log_error_errno(r, "Lost the connection to the submission service at %s: %m", c->path);
        return EX_TEMPFAIL;
}

/* A command and its reply; returns 0 with the reply, or an exit code > 0 for I/O trouble. */
static int conn_exchange(Conn *c, const char *cmd, Reply *reply) {
        int r = conn_command(c, cmd);
        if (r >= 0)
                r = conn_read_reply(c, reply);
        return r < 0 ? io_exit_code(c, r) : 0;
}

static int send_content(Conn *c, const char *content, size_t len) {
        char out[65536];
        size_t k = 0;
        bool bol = true;
        int r;

        for (size_t i = 0; i < len; i++) {
                if (k + 4 > sizeof out) {
                        r = conn_write(c, out, k);
                        if (r < 0)
                                return r;
                        k = 0;
                }
                if (bol && content[i] == '.')
                        out[k++] = '.';
                if (content[i] == '\n')
                        out[k++] = '\r';
                out[k++] = content[i];
                bol = content[i] == '\n';
        }
        if (!bol) {
                out[k++] = '\r';
                out[k++] = '\n';
        }
        r = conn_write(c, out, k);
        if (r < 0)
                return r;
        if (c->verbose)
                fprintf(stderr, ">>> (%zu bytes of content)\n>>> .\n", len);
        return conn_write(c, ".\r\n", 3);
}

static bool ehlo_has(const Reply *r, const char *keyword) {
        size_t n = strlen(keyword);
        /* The first line is the server's name; each further line is one extension. */
        for (const char *l = strchr(r->text, '\n'); l; l = strchr(l, '\n')) {
                l++;
                if (strncasecmp(l, keyword, n) == 0 && (l[n] == '\0' || l[n] == ' ' || l[n] == '\n'))
                        return true;
        }
        return false;
}

/* Marks the first failure: its code decides the exit status. */
static void fail(int *status, int code) {
        if (*status == EX_OK)
                *status = code;
}

int submit_message(const SubmitRequest *req, size_t *ret_n_accepted) {
        _cleanup_free_ bool *done = NULL;
        Conn c = { .path = req->socket_path, .verbose = req->verbose };
        _cleanup_close_ int fd = -EBADF;
        size_t n_rcpt = 0, n_accepted = 0, n_left;
        bool has_size, has_8bit;
        int status = EX_OK, r;
        char cmd[1024], buf[REPLY_TEXT_MAX + 16];
        Reply reply;

        while (req->recipients && req->recipients[n_rcpt])
                n_rcpt++;
        done = calloc(n_rcpt + 1, sizeof(bool));
        if (!done)
                return EX_OSERR;
        n_left = n_rcpt;

        fd = submit_connect(req->socket_path);
        if (fd < 0) {
                log_error_errno(fd, "Cannot reach the mail submission service at %s: %m%s",
                                req->socket_path,
                                IN_SET(fd, -ENOENT, -ECONNREFUSED) ?
                                " (is the mail system running? systemctl start mta.socket)" : "");
                return EX_TEMPFAIL;
        }
        c.fd = fd;

        r = conn_read_reply(&c, &reply);
        if (r < 0)
                return io_exit_code(&c, r);
        if (reply.code != 220) {
                log_error("The mail submission service is not available: %s",
                          reply_oneline(&reply, buf, sizeof buf));
                return reply_exit_code(&reply, STAGE_GREETING);
        }

        snprintf(cmd, sizeof cmd, "EHLO %s", req->helo_name);
        r = conn_exchange(&c, cmd, &reply);
        if (r > 0)
                return r;
        if (reply.code / 100 == 5) {
                snprintf(cmd, sizeof cmd, "HELO %s", req->helo_name);
                r = conn_exchange(&c, cmd, &reply);
                if (r > 0)
                        return r;
        }
        if (reply.code / 100 != 2) {
                log_error("The mail submission service refused the session: %s",
                          reply_oneline(&reply, buf, sizeof buf));
                return reply_exit_code(&reply, STAGE_EHLO);
        }
        has_size = ehlo_has(&reply, "SIZE");
        has_8bit = ehlo_has(&reply, "8BITMIME");

        while (n_left > 0) {
                size_t n_this = 0;
                bool limited = false;
                int k = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", req->sender);
                if (has_size && k > 0 && (size_t) k < sizeof cmd)
                        k += snprintf(cmd + k, sizeof cmd - k, " SIZE=%zu", req->content_len);
                if (has_8bit && req->body_type && k > 0 && (size_t) k < sizeof cmd)
                        k += snprintf(cmd + k, sizeof cmd - k, " BODY=%s", req->body_type);
                if (k < 0 || (size_t) k >= sizeof cmd) {
                        log_error("Sender address too long: %s", req->sender);
                        return EX_DATAERR;
                }
                r = conn_exchange(&c, cmd, &reply);
                if (r > 0)
                        return r;
                if (reply.code / 100 != 2) {
                        log_error("Sender address <%s> rejected: %s", req->sender,
                                  reply_oneline(&reply, buf, sizeof buf));
                        fail(&status, reply_exit_code(&reply, STAGE_MAIL));
                        break;
                }

                for (size_t i = 0; i < n_rcpt; i++) {
                        if (done[i])
                                continue;
                        if (limited)
                                break;
                        k = snprintf(cmd, sizeof cmd, "RCPT TO:<%s>", req->recipients[i]);
                        if (k < 0 || (size_t) k >= sizeof cmd) {
                                log_error("Recipient address too long: %s", req->recipients[i]);
                                fail(&status, EX_DATAERR);
                                done[i] = true;
                                n_left--;
                                continue;
                        }
                        r = conn_exchange(&c, cmd, &reply);
                        if (r > 0)
                                return r;
                        if (reply.code / 100 == 2) {
                                done[i] = true;
                                n_this++;
                                n_left--;
                                continue;
                        }
                        if (n_this > 0 && (reply.code == 452 || streq(reply.dsn, "4.5.3"))) {
                                /* Too many recipients for one transaction: the rest go in the next. */
                                limited = true;
                                continue;
                        }
                        log_error("Recipient address <%s> rejected: %s", req->recipients[i],
                                  reply_oneline(&reply, buf, sizeof buf));
                        fail(&status, reply_exit_code(&reply, STAGE_RCPT));
                        done[i] = true;
                        n_left--;
                }

                if (n_this == 0) {
                        (void) conn_exchange(&c, "RSET", &reply);
                        break;
                }

                r = conn_exchange(&c, "DATA", &reply);
                if (r > 0)
                        return r;
                if (reply.code != 354) {
                        log_error("The message was refused: %s", reply_oneline(&reply, buf, sizeof buf));
                        fail(&status, reply_exit_code(&reply, STAGE_DATA));
                        break;
                }
                r = send_content(&c, req->content, req->content_len);
                if (r >= 0)
                        r = conn_read_reply(&c, &reply);
                if (r < 0)
                        return io_exit_code(&c, r);
                if (reply.code / 100 != 2) {
                        log_error("The message was refused: %s", reply_oneline(&reply, buf, sizeof buf));
                        fail(&status, reply_exit_code(&reply, STAGE_DOT));
                        break;
                }
                if (req->verbose)
                        fprintf(stderr, "Accepted for %zu recipient(s): %s\n", n_this,
                                reply_oneline(&reply, buf, sizeof buf));
                n_accepted += n_this;
        }

        (void) conn_exchange(&c, "QUIT", &reply);
        if (ret_n_accepted)
                *ret_n_accepted = n_accepted;
        return status;
}

int submit_relay(const char *socket_path, int in_fd, int out_fd) {
        _cleanup_close_ int fd = submit_connect(socket_path);
        struct pollfd p[2];
        bool in_open = true;
        char buf[16384];

        if (fd < 0) {
                static const char msg[] = "421 4.3.2 Mail submission service unavailable\r\n";
                log_error_errno(fd, "Cannot reach the mail submission service at %s: %m", socket_path);
                (void) !write(out_fd, msg, sizeof msg - 1);
                return EX_TEMPFAIL;
        }

        for (;;) {
                p[0] = (struct pollfd) { .fd = fd, .events = POLLIN };
                p[1] = (struct pollfd) { .fd = in_open ? in_fd : -1, .events = POLLIN };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return EX_OSERR;
                }
                if (p[0].revents) {
                        ssize_t n = read(fd, buf, sizeof buf);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                return EX_OK;      /* the server ended the session */
                        for (ssize_t off = 0; off < n;) {
                                ssize_t w = write(out_fd, buf + off, (size_t) (n - off));
                                if (w < 0 && errno == EINTR)
                                        continue;
                                if (w < 0)
                                        return EX_IOERR;
                                off += w;
                        }
                }
                if (in_open && p[1].revents) {
                        ssize_t n = read(in_fd, buf, sizeof buf);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0) {
                                in_open = false;
                                (void) shutdown(fd, SHUT_WR);
                                continue;
                        }
                        Conn c = { .fd = fd, .path = socket_path };
                        if (conn_write(&c, buf, (size_t) n) < 0)
                                return EX_OK;      /* the server closed: its last reply says why */
                }
        }
}
