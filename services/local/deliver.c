/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/privs.h"
#include "common/strv.h"
#include "services/local/deliver.h"
#include "services/local/mailbox.h"
#include "services/local/maildir.h"
#include "services/local/mbox.h"
#include "services/local/server.h"

#define FORWARD_MAX (32 * 1024)
#define OUTPUT_LINE_MAX 200

/* ---- settings ---- */

static int get_string(const Config *c, const char *name, const char *def, char **ret) {
        const char *v = c ? config_get(c, name) : NULL;
        char *s = strdup(v ? v : def);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Parameters that are not in every table (command_time_limit, the lock timing) fall back to
 * Postfix's defaults when main.cf does not name them. */
static int get_time(const Config *c, const char *name, uint64_t def, uint64_t *ret) {
        const char *v = c ? config_get(c, name) : NULL;
        if (!v) {
                *ret = def;
                return 0;
        }
        return config_parse_time(v, 's', ret);
}

int local_settings_load(const Config *c, LocalSettings *ret) {
        LocalSettings s = { .strict_ownership = true, .lock_fcntl = true, .lock_dotlock = true };
        _cleanup_strv_free_ char **locks = NULL;
        uint64_t attempts = 20, delay = 1;
        const char *raw;
        bool b;
        int r;

        if ((r = get_string(c, "mail_spool_directory", "/var/mail", &s.spool_dir)) < 0 ||
            (r = get_string(c, "default_privs", "nobody", &s.default_privs)) < 0)
                goto fail;
        r = -EINVAL;
        if (c && config_get(c, "mailbox_size_limit") &&
            config_get_size(c, "mailbox_size_limit", &s.mailbox_size_limit) < 0) {
                log_error("Invalid mailbox_size_limit.");
                goto fail;
        }
        if (c && !config_get(c, "mailbox_size_limit"))
                s.mailbox_size_limit = 51200000;
        if (get_time(c, "command_time_limit", 1000, &s.command_time_limit) < 0 ||
            get_time(c, "deliver_lock_delay", 1, &delay) < 0 ||
            get_time(c, "stale_lock_time", 300, &s.stale_lock_sec) < 0) {
                log_error("Invalid command_time_limit, deliver_lock_delay or stale_lock_time.");
                goto fail;
        }
        raw = c ? config_get(c, "deliver_lock_attempts") : NULL;
        if (raw) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(raw, &end, 10);
                if (errno || end == raw || *end || n > 1000) {
                        log_error("Invalid deliver_lock_attempts.");
                        goto fail;
                }
                attempts = n;
        }
        s.lock_attempts = (unsigned) attempts;
        s.lock_delay_usec = delay * 1000000u;
        if (c && config_get(c, "strict_mailbox_ownership") &&
            config_get_bool(c, "strict_mailbox_ownership", &b) == 0)
                s.strict_ownership = b;
        if (c && config_get(c, "mailbox_delivery_lock") &&
            config_get_list(c, "mailbox_delivery_lock", &locks) == 0) {
                s.lock_fcntl = s.lock_dotlock = false;
                for (char **l = locks; *l; l++) {
                        if (streq(*l, "fcntl"))
                                s.lock_fcntl = true;
                        else if (streq(*l, "dotlock"))
                                s.lock_dotlock = true;
                        else if (streq(*l, "flock"))
                                s.lock_flock = true;
                        else {
                                log_error("Unknown mailbox_delivery_lock method \"%s\".", *l);
                                goto fail;
                        }
                }
        }
        raw = c ? config_get(c, "command_execution_directory") : NULL;
        if (!isempty(raw) && raw[0] == '/' && !(s.command_directory = strdup(raw)))
                goto oom;
        raw = c ? config_get(c, "home_mailbox") : NULL;
        if (!isempty(raw)) {
                if (raw[0] == '/') {
                        log_error("home_mailbox must be relative to the home directory: %s", raw);
                        goto fail;
                }
                if (!(s.home_mailbox = strdup(raw)))
                        goto oom;
        }
        /* Raw: its $names are per delivery (and usually environment variables), not main.cf's. */
        raw = c ? config_get_raw(c, "mailbox_command") : NULL;
        if (!isempty(raw) && !(s.mailbox_command = local_command_translate(raw)))
                goto oom;
        /* forward_path needs the raw value: $home and $user are per delivery, not main.cf names. */
        raw = c ? config_get_raw(c, "forward_path") : "$home/.forward";
        if (!raw)
                raw = "$home/.forward";
        if (!(s.forward_path = strdup(raw)))
                goto oom;
        *ret = s;
        return 0;
oom:
        r = -ENOMEM;
fail:
        local_settings_done(&s);
        return r;
}

char *local_command_translate(const char *raw) {
        static const struct {
                const char *name, *env;
        } names[] = {
                { "user", "USER" },
                { "home", "HOME" },
                { "shell", "SHELL" },
                { "sender", "SENDER" },
                { "recipient", "RECIPIENT" },
                { "local", "LOCAL" },
                { "domain", "DOMAIN" },
                { "extension", "EXTENSION" },
                { "original_recipient", "ORIGINAL_RECIPIENT" },
        };
        size_t cap = strlen(raw) * 6 + 1, n = 0;
        char *out = malloc(cap);

        if (!out)
                return NULL;
        for (const char *p = raw; *p;) {
                bool done = false;
                if (*p == '$') {
                        bool brace = p[1] == '{';
                        const char *q = p + 1 + brace;
                        for (size_t i = 0; i < ELEMENTSOF(names) && !done; i++) {
                                size_t l = strlen(names[i].name);
                                if (strncmp(q, names[i].name, l) != 0)
                                        continue;
                                /* "$user" but not "$username", "${user}" but not "${user?x}". */
                                char next = q[l];
                                if (brace ? next != '}' : (next == '_' || (next >= 'a' && next <= 'z') ||
                                                           (next >= '0' && next <= '9')))
                                        continue;
                                n += (size_t) sprintf(out + n, "${%s}", names[i].env);
                                p = q + l + brace;
                                done = true;
                        }
                }
                if (!done)
                        out[n++] = *p++;
        }
        out[n] = '\0';
        return out;
}

void local_settings_done(LocalSettings *s) {
        free(s->spool_dir);
        free(s->home_mailbox);
        free(s->mailbox_command);
        free(s->default_privs);
        free(s->command_directory);
        free(s->forward_path);
        *s = (LocalSettings) {};
}

void local_outcome_done(LocalOutcome *o) {
        free(o->forward_text);
        o->forward_text = NULL;
}

static void set_outcome(LocalOutcome *ret, MailStatus st, const char *dsn, const char *fmt, ...)
        _printf_(4, 5);
static void set_outcome(LocalOutcome *ret, MailStatus st, const char *dsn, const char *fmt, ...) {
        va_list ap;

        ret->status = st;
        ret->forward = false;
        snprintf(ret->dsn, sizeof ret->dsn, "%s", dsn);
        va_start(ap, fmt);
        vsnprintf(ret->text, sizeof ret->text, fmt, ap);
        va_end(ap);
}

bool local_user_name_valid(const char *name) {
        size_t n;

        if (isempty(name) || name[0] == '.' || name[0] == '-')
                return false;
        n = strlen(name);
        if (n > 64)
                return false;
        for (const char *p = name; *p; p++) {
                unsigned char c = (unsigned char) *p;
                if (c == '/' || c <= 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

int local_request_check(const LocalRequest *req, LocalOutcome *ret) {
        const char *bad = NULL;

        if (!req->kind ||
            !(streq(req->kind, "mailbox") || streq(req->kind, "file") || streq(req->kind, "command")))
                bad = "kind";
        else if (!req->user)
                bad = "user";
        else if (!req->sender)
                bad = "sender";
        else if (isempty(req->recipient))
                bad = "recipient";
        else if (streq(req->kind, "file") && (!req->target || req->target[0] != '/'))
                bad = "file target";
        else if (streq(req->kind, "command") && isempty(req->target))
                bad = "command target";
        else if (req->size > INT64_MAX || req->offset > INT64_MAX || req->offset + req->size > INT64_MAX)
                bad = "content offset";
        if (!bad)
                return 0;
        set_outcome(ret, MAIL_TEMPFAIL, "4.3.5", "malformed delivery request (%s)", bad);
        return -EINVAL;
}

/* ---- who the delivery runs as ---- */

typedef struct RunAs {
        uid_t uid;
        gid_t gid;
        gid_t groups[2];
        size_t n_groups;
        char *name, *home, *shell;
} RunAs;

static void run_as_done(RunAs *r) {
        free(r->name);
        free(r->home);
        free(r->shell);
}

static int run_as_from_passwd(const struct passwd *pw, RunAs *ret) {
        RunAs r = { .uid = pw->pw_uid, .gid = pw->pw_gid, .groups = { pw->pw_gid }, .n_groups = 1 };

        r.name = strdup(pw->pw_name);
        r.home = strdup(isempty(pw->pw_dir) ? "/" : pw->pw_dir);
        r.shell = strdup(isempty(pw->pw_shell) ? "/bin/sh" : pw->pw_shell);
        if (!r.name || !r.home || !r.shell) {
                run_as_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

/* ---- in the child: ~/.forward ---- */

/* Expands $home, ${home}, $user and ${user} in one forward_path entry; NULL (skip the entry)
 * when it names anything else, since we cannot know what it means here. */
static char *forward_expand(const char *pattern, const RunAs *u) {
        size_t cap = strlen(pattern) + strlen(u->home) * 4 + strlen(u->name) * 4 + 1, n = 0;
        char *out = malloc(cap);
        if (!out)
                return NULL;
        for (const char *p = pattern; *p;) {
                const char *val = NULL;
                size_t skip = 0;
                if (*p == '$') {
                        if (strncmp(p, "$home", 5) == 0 || strncmp(p, "${home}", 7) == 0)
                                val = u->home, skip = p[1] == '{' ? 7 : 5;
                        else if (strncmp(p, "$user", 5) == 0 || strncmp(p, "${user}", 7) == 0)
                                val = u->name, skip = p[1] == '{' ? 7 : 5;
                        else {
                                free(out);
                                return NULL;
                        }
                        size_t l = strlen(val);
                        if (n + l + 1 > cap) {
                                free(out);
                                return NULL;
                        }
                        memcpy(out + n, val, l);
                        n += l;
                        p += skip;
                        continue;
                }
                if (n + 2 > cap) {
                        free(out);
                        return NULL;
                }
                out[n++] = *p++;
        }
        out[n] = '\0';
        return out;
}

static bool forward_has_targets(const char *text) {
        for (const char *p = text; *p;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p && *p != '#' && *p != '\n' && *p != '\r')
                        return true;
                p = strchrnul(p, '\n');
                if (*p)
                        p++;
        }
        return false;
}

/* 1 and the text when the user has a usable ~/.forward with targets, 0 when not, negative errno
 * on an error that must defer the delivery. */
static int forward_read(const LocalSettings *s, const RunAs *u, char **ret) {
        _cleanup_strv_free_ char **paths = NULL;

        if (isempty(s->forward_path))
                return 0;
        if (strv_split_list(s->forward_path, &paths) < 0)
                return -ENOMEM;
        for (char **pat = paths; *pat; pat++) {
                _cleanup_free_ char *path = forward_expand(*pat, u), *buf = NULL;
                _cleanup_close_ int fd = -EBADF;
                struct stat st;
                size_t n = 0;

                if (!path || path[0] != '/')
                        continue;
                fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) {
                        /* Not there or not readable by the user: no forwarding. */
                        if (errno == ENOENT || errno == ENOTDIR || errno == EACCES || errno == ELOOP ||
                            errno == ENAMETOOLONG)
                                continue;
                        return negative_errno();
                }
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                if (!S_ISREG(st.st_mode) || (st.st_uid != u->uid && st.st_uid != 0) || (st.st_mode & 022)) {
                        log_warning("Ignoring %s of %s: not a regular file owned by the user and writable "
                                    "only by them.", path, u->name);
                        continue;
                }
                buf = malloc(FORWARD_MAX + 1);
                if (!buf)
                        return -ENOMEM;
                for (;;) {
                        ssize_t k = read(fd, buf + n, FORWARD_MAX + 1 - n);
                        if (k < 0) {
                                if (errno == EINTR)
                                        continue;
                                return negative_errno();
                        }
                        if (k == 0)
                                break;
                        n += (size_t) k;
                        if (n > FORWARD_MAX)
                                return -EFBIG;
                }
                buf[n] = '\0';
                if (memchr(buf, '\0', n)) {
                        log_warning("Ignoring %s of %s: it contains a NUL byte.", path, u->name);
                        continue;
                }
                if (!forward_has_targets(buf))
                        continue;
                *ret = TAKE_PTR(buf);
                return 1;
        }
        return 0;
}

/* ---- in the child: mailbox and file ---- */

static void deliver_command(const LocalSettings *s, const RunAs *u, const LocalRequest *req, int queue_fd,
                            LocalOutcome *ret);

static bool endswith_slash(const char *p) {
        size_t n = strlen(p);
        return n > 0 && p[n - 1] == '/';
}

static bool flag_set(const char *flags, const char *name) {
        _cleanup_strv_free_ char **l = NULL;
        return flags && strv_split_list(flags, &l) == 0 && strv_contains(l, name);
}

static MailboxOptions mailbox_options(const LocalSettings *s, const RunAs *u) {
        return (MailboxOptions) {
                .dotlock = s->lock_dotlock,
                .fcntl_lock = s->lock_fcntl,
                .flock_lock = s->lock_flock,
                .check_owner = s->strict_ownership,
                .owner = u->uid,
                .size_limit = s->mailbox_size_limit,
                .lock_attempts = s->lock_attempts,
                .lock_delay_usec = s->lock_delay_usec,
                .stale_lock_sec = s->stale_lock_sec,
                .mbox_flags = MBOX_QUOTE_FROM | MBOX_BLANK_LINE,
        };
}

/* Where a mailbox delivery appends: an mbox file in the spool directory or below the home. */
typedef struct MboxTarget {
        int dir_fd;
        const char *name;             /* in dir_fd; points into label */
        char *label;                  /* "mailbox /var/mail/alice" or "/home/alice/Mailbox": the texts, and
                                       * what tells two targets apart */
} MboxTarget;

static void mbox_target_done(MboxTarget *t) {
        t->dir_fd = safe_close(t->dir_fd);
        free(t->label);
        *t = (MboxTarget) { .dir_fd = -EBADF };
}

/* home_mailbox "Mailbox": an mbox file relative to the home directory, which is opened as the
 * user, with a dot-lock beside it. */
static int home_mbox_target(const LocalSettings *s, const RunAs *u, MboxTarget *t, LocalOutcome *ret) {
        _cleanup_close_ int home_fd = -EBADF;
        _cleanup_free_ char *dir = NULL;
        const char *hm = s->home_mailbox, *base;

        home_fd = open(u->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (home_fd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open home directory %s: %m", u->home);
                return 0;
        }
        base = strrchr(hm, '/');
        if (base) {
                dir = strndup(hm, (size_t) (base - hm));
                base++;
        } else {
                dir = strdup(".");
                base = hm;
        }
        if (!dir) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return 0;
        }
        if (strstr(hm, "..") || streq(base, ".")) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.5", "home_mailbox %s is not a file below home", hm);
                return 0;
        }
        t->dir_fd = openat(home_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t->dir_fd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open %s/%s: %m", u->home, dir);
                return 0;
        }
        if (asprintf(&t->label, "%s/%s", u->home, hm) < 0) {
                t->label = NULL;
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return 0;
        }
        t->name = t->label + strlen(t->label) - strlen(base);
        return 1;
}

/* The first part of a mailbox delivery: ~/.forward, then where the mail goes. Returns 1 with *t
 * when the message is to be appended to an mbox file (by the caller), 2 when it goes to
 * mailbox_command or a Maildir (deliver_mailbox_other()), 0 when it is done with *ret set
 * (forwarded, or an error). Nothing is delivered here. */
static int mailbox_prepare(const LocalSettings *s, const RunAs *u, const LocalRequest *req, MboxTarget *t,
                           LocalOutcome *ret) {
        int r;

        *t = (MboxTarget) { .dir_fd = -EBADF };
        if (!flag_set(req->flags, "noforward")) {
                _cleanup_free_ char *text = NULL;
                r = forward_read(s, u, &text);
                if (r == -EFBIG) {
                        set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "~/.forward of %s is larger than %d bytes",
                                    u->name, FORWARD_MAX);
                        return 0;
                }
                if (r < 0) {
                        set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot read ~/.forward of %s: %s", u->name,
                                    strerror(-r));
                        return 0;
                }
                if (r > 0) {
                        set_outcome(ret, MAIL_OK, "2.0.0", "forwarded by ~/.forward of %s", u->name);
                        ret->forward = true;
                        ret->forward_text = TAKE_PTR(text);
                        return 0;
                }
        }

        if (s->mailbox_command)
                return 2;
        if (s->home_mailbox) {
                if (endswith_slash(s->home_mailbox))
                        return 2;
                r = home_mbox_target(s, u, t, ret);
                if (r <= 0)
                        mbox_target_done(t);
                return r;
        }
        t->dir_fd = open(s->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t->dir_fd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot open mail_spool_directory %s: %m",
                            s->spool_dir);
                return 0;
        }
        if (asprintf(&t->label, "mailbox %s/%s", s->spool_dir, u->name) < 0) {
                t->label = NULL;
                mbox_target_done(t);
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return 0;
        }
        t->name = t->label + strlen(t->label) - strlen(u->name);
        return 1;
}

/* mailbox_command, or a home_mailbox Maildir ("Maildir/", relative to the home directory, which is
 * opened as the user). */
static void deliver_mailbox_other(const LocalSettings *s, const RunAs *u, const LocalRequest *req,
                                  int queue_fd, LocalOutcome *ret) {
        _cleanup_close_ int home_fd = -EBADF;
        MailboxOutcome mo = {};
        int r;

        if (s->mailbox_command) {
                LocalRequest cmd = *req;
                cmd.target = s->mailbox_command;
                deliver_command(s, u, &cmd, queue_fd, ret);
                return;
        }
        MailboxOptions o = mailbox_options(s, u);
        MboxEnvelope env = { .sender = req->sender, .recipient = req->recipient, .date = time(NULL) };
        home_fd = open(u->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (home_fd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open home directory %s: %m", u->home);
                return;
        }
        r = maildir_deliver(home_fd, s->home_mailbox, &o, queue_fd, req->offset, req->size, &env, &mo);
        if (r < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot deliver to %s: %s", s->home_mailbox,
                            strerror(-r));
                return;
        }
        if (mo.status == MAIL_OK)
                set_outcome(ret, MAIL_OK, mo.dsn, "delivered to %s/%s", u->home, s->home_mailbox);
        else
                set_outcome(ret, mo.status, mo.dsn, "%s", mo.text);
}

static void mbox_outcome(const MboxTarget *t, int r, const MailboxOutcome *mo, LocalOutcome *ret) {
        if (r < 0)
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot deliver to %s: %s", t->label, strerror(-r));
        else if (mo->status == MAIL_OK)
                set_outcome(ret, MAIL_OK, mo->dsn, "delivered to %s", t->label);
        else
                set_outcome(ret, mo->status, mo->dsn, "%s", mo->text);
}

static void deliver_mailbox(const LocalSettings *s, const RunAs *u, const LocalRequest *req, int queue_fd,
                            LocalOutcome *ret) {
        _cleanup_(mbox_target_done) MboxTarget t = { .dir_fd = -EBADF };
        MailboxOutcome mo = {};
        int r;

        r = mailbox_prepare(s, u, req, &t, ret);
        if (r == 0)
                return;
        if (r == 2) {
                deliver_mailbox_other(s, u, req, queue_fd, ret);
                return;
        }
        MailboxOptions o = mailbox_options(s, u);
        MboxEnvelope env = { .sender = req->sender, .recipient = req->recipient, .date = time(NULL) };
        r = mailbox_append(t.dir_fd, t.name, &o, queue_fd, req->offset, req->size, &env, &mo);
        mbox_outcome(&t, r, &mo, ret);
}

static void deliver_file(const LocalSettings *s, const RunAs *u, const LocalRequest *req, int queue_fd,
                         LocalOutcome *ret) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        const char *base;
        MailboxOutcome mo = {};
        int r;

        /* Aliases like "devnull: /dev/null" are common; Postfix accepts them without writing. */
        if (streq(req->target, "/dev/null")) {
                set_outcome(ret, MAIL_OK, "2.0.0", "delivered to file: /dev/null");
                return;
        }
        base = strrchr(req->target, '/') + 1;
        if (isempty(base) || streq(base, ".") || streq(base, "..")) {
                set_outcome(ret, MAIL_PERMFAIL, "5.3.5", "file target %s is not a file name", req->target);
                return;
        }
        dir = strndup(req->target, (size_t) (base - req->target));
        if (!dir) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return;
        }
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.2.0", "cannot open directory of %s as %s: %m",
                            req->target, u->name);
                return;
        }
        MailboxOptions o = mailbox_options(s, u);
        o.dotlock = false;     /* no lock files in arbitrary directories, as Postfix */
        o.check_owner = true;
        MboxEnvelope env = { .sender = req->sender, .recipient = req->recipient, .date = time(NULL) };
        r = mailbox_append(dir_fd, base, &o, queue_fd, req->offset, req->size, &env, &mo);
        if (r < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot deliver to file %s: %s", req->target,
                            strerror(-r));
                return;
        }
        if (mo.status == MAIL_OK)
                set_outcome(ret, MAIL_OK, mo.dsn, "delivered to file: %s", req->target);
        else
                set_outcome(ret, mo.status, mo.dsn, "%s: %s", req->target, mo.text);
}

/* ---- in the child: command ---- */

static const struct {
        int code;
        const char *dsn;
        const char *text;
} sysexits_table[] = {
        { EX_USAGE, "5.3.0", "command line usage error" },
        { EX_DATAERR, "5.6.0", "data format error" },
        { EX_NOINPUT, "5.3.0", "cannot open input" },
        { EX_NOUSER, "5.1.1", "user unknown" },
        { EX_NOHOST, "5.1.2", "host name unknown" },
        { EX_UNAVAILABLE, "5.3.0", "service unavailable" },
        { EX_SOFTWARE, "5.3.0", "internal software error" },
        { EX_OSERR, "4.3.0", "system resource problem" },
        { EX_OSFILE, "5.3.0", "critical OS file missing" },
        { EX_CANTCREAT, "5.2.0", "can't create user output file" },
        { EX_IOERR, "5.3.0", "input/output error" },
        { EX_TEMPFAIL, "4.3.0", "temporary failure" },
        { EX_PROTOCOL, "5.5.0", "remote error in protocol" },
        { EX_NOPERM, "5.7.0", "permission denied" },
        { EX_CONFIG, "5.3.5", "local configuration error" },
};

static char *env_pair(const char *name, const char *value) {
        char *s;
        if (asprintf(&s, "%s=%s", name, strempty(value)) < 0)
                return NULL;
        return s;
}

static char **command_environment(const RunAs *u, const LocalRequest *req) {
        _cleanup_free_ char *local = NULL;
        const char *at = strrchr(req->recipient, '@');
        const char *tz = getenv("TZ");
        char **env = calloc(16, sizeof(char *));
        size_t n = 0;

        if (!env)
                return NULL;
        local = at ? strndup(req->recipient, (size_t) (at - req->recipient)) : strdup(req->recipient);
        if (!local)
                goto fail;
        /* Envelope data goes only here, never into the command line. */
        if (!(env[n++] = env_pair("PATH", "/usr/bin:/bin")) ||
            !(env[n++] = env_pair("HOME", u->home)) ||
            !(env[n++] = env_pair("USER", u->name)) ||
            !(env[n++] = env_pair("LOGNAME", u->name)) ||
            !(env[n++] = env_pair("SHELL", u->shell)) ||
            !(env[n++] = env_pair("SENDER", req->sender)) ||
            !(env[n++] = env_pair("RECIPIENT", req->recipient)) ||
            !(env[n++] = env_pair("LOCAL", local)) ||
            !(env[n++] = env_pair("DOMAIN", at ? at + 1 : "")) ||
            !(env[n++] = env_pair("EXTENSION", req->extension)) ||
            !(env[n++] = env_pair("ORIGINAL_RECIPIENT", req->original ? req->original : req->recipient)))
                goto fail;
        if (tz && !(env[n++] = env_pair("TZ", tz)))
                goto fail;
        return env;
fail:
        strv_free(env);
        return NULL;
}

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void reset_signals(void) {
        sigset_t all;
        for (int sig = 1; sig < _NSIG; sig++)
                (void) signal(sig, SIG_DFL);
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Keeps the first line of the command's output for the bounce text, printable only. */
static void capture_line(char *line, size_t *len, bool *done, const char *buf, size_t n) {
        for (size_t i = 0; i < n && !*done; i++) {
                unsigned char c = (unsigned char) buf[i];
                if (c == '\n') {
                        if (*len > 0)
                                *done = true;
                        continue;
                }
                if (*len + 1 >= OUTPUT_LINE_MAX) {
                        *done = true;
                        break;
                }
                line[(*len)++] = (c < 0x20 || c >= 0x7f) ? '?' : (char) c;
                line[*len] = '\0';
        }
}

static void deliver_command(const LocalSettings *s, const RunAs *u, const LocalRequest *req, int queue_fd,
                            LocalOutcome *ret) {
        _cleanup_strv_free_ char **env = NULL;
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF };
        char line[OUTPUT_LINE_MAX] = "";
        size_t line_len = 0;
        bool line_done = false, timed_out = false;
        pid_t cmd, feeder;
        int status = 0;

        env = command_environment(u, req);
        if (!env) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return;
        }
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot create pipe: %m");
                goto close_all;
        }

        cmd = fork();
        if (cmd < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot fork: %m");
                goto close_all;
        }
        if (cmd == 0) {
                const char *dir = s->command_directory ? s->command_directory : u->home;
                /* Its own process group, so that a timeout kills everything it started. */
                (void) setsid();
                reset_signals();
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0)
                        _exit(EX_OSERR);
                if (chdir(dir) < 0 && chdir("/") < 0)
                        _exit(EX_OSERR);
                char *argv[] = { (char *) "sh", (char *) "-c", (char *) req->target, NULL };
                execve("/bin/sh", argv, env);
                _exit(EX_OSERR);
        }

        /* The message goes in from a separate process, so a command that writes much output
         * before it reads its input can never deadlock with us. */
        feeder = fork();
        if (feeder < 0) {
                (void) kill(-cmd, SIGKILL);
                (void) waitpid(cmd, NULL, 0);
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot fork: %m");
                goto close_all;
        }
        if (feeder == 0) {
                MboxEnvelope e = { .sender = req->sender, .recipient = req->recipient, .date = time(NULL) };
                safe_close(in[0]);
                safe_close(out[0]);
                safe_close(out[1]);
                (void) signal(SIGPIPE, SIG_IGN);
                int r = mbox_write_message(in[1], queue_fd, req->offset, req->size, &e, 0, NULL);
                _exit(r < 0 && r != -EPIPE ? 1 : 0);
        }
        in[0] = safe_close(in[0]);
        in[1] = safe_close(in[1]);
        out[1] = safe_close(out[1]);

        uint64_t deadline = mono_usec() + s->command_time_limit * 1000000u;
        bool eof = false, exited = false;
        while (!exited) {
                pid_t w = waitpid(cmd, &status, WNOHANG);
                if (w == cmd) {
                        exited = true;
                        break;
                }
                uint64_t now = mono_usec();
                if (now >= deadline) {
                        timed_out = true;
                        /* The group, and the command itself in case it has not reached setsid(). */
                        (void) kill(-cmd, SIGKILL);
                        (void) kill(cmd, SIGKILL);
                        (void) waitpid(cmd, &status, 0);
                        break;
                }
                uint64_t left_ms = (deadline - now) / 1000 + 1;
                int wait_ms = left_ms < 50 ? (int) left_ms : 50;
                if (eof) {
                        /* The command closed its output but runs on: only its exit matters now. */
                        struct timespec ts = { .tv_nsec = (long) wait_ms * 1000000 };
                        (void) nanosleep(&ts, NULL);
                        continue;
                }
                struct pollfd p = { .fd = out[0], .events = POLLIN };
                int k = poll(&p, 1, wait_ms);
                if (k > 0) {
                        char buf[4096];
                        ssize_t got = read(out[0], buf, sizeof buf);
                        if (got > 0)
                                capture_line(line, &line_len, &line_done, buf, (size_t) got);
                        else if (got == 0 || (errno != EINTR && errno != EAGAIN))
                                eof = true;
                }
        }
        if (!timed_out && !eof) {
                /* Whatever the command wrote just before it exited. */
                int fl = fcntl(out[0], F_GETFL);
                if (fl >= 0 && fcntl(out[0], F_SETFL, fl | O_NONBLOCK) >= 0) {
                        char buf[4096];
                        ssize_t got;
                        while ((got = read(out[0], buf, sizeof buf)) > 0 && !line_done)
                                capture_line(line, &line_len, &line_done, buf, (size_t) got);
                }
        }
        /* A command may exit without reading all of its input; the feeder must not wait for it. */
        (void) kill(feeder, SIGKILL);
        (void) waitpid(feeder, NULL, 0);

        if (timed_out)
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "command time limit (%" PRIu64 "s) exceeded: %s",
                            s->command_time_limit, req->target);
        else if (WIFSIGNALED(status))
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "command killed by signal %d: %s", WTERMSIG(status),
                            req->target);
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                set_outcome(ret, MAIL_OK, "2.0.0", "delivered to command: %s", req->target);
        else {
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                const char *dsn = "5.3.0", *what = NULL;
                for (size_t i = 0; i < ELEMENTSOF(sysexits_table); i++)
                        if (sysexits_table[i].code == code) {
                                dsn = sysexits_table[i].dsn;
                                what = sysexits_table[i].text;
                        }
                set_outcome(ret, dsn[0] == '4' ? MAIL_TEMPFAIL : MAIL_PERMFAIL, dsn,
                            "command died with status %d%s%s%s%s", code, what ? " (" : "", strempty(what),
                            what ? ")" : "", line_len > 0 ? ": " : "");
                if (line_len > 0) {
                        size_t used = strlen(ret->text);
                        snprintf(ret->text + used, sizeof ret->text - used, "%s", line);
                }
        }

close_all:
        safe_close(in[0]);
        safe_close(in[1]);
        safe_close(out[0]);
        safe_close(out[1]);
}

/* ---- the parent ---- */

/* What every delivery process does first: drop to the user (when we are root) and arrange to die
 * with mta-local. 0, or an exit status for _exit(). */
static int child_setup(const LocalSettings *s, const RunAs *u, bool switch_user, const char *kind,
                       pid_t parent) {
        int r;

        (void) signal(SIGPIPE, SIG_IGN);
        /* A file size limit must show up as EFBIG, not kill us halfway through a write. */
        (void) signal(SIGXFSZ, SIG_IGN);
        umask(077);

        if (switch_user) {
                if (u->uid == 0) {
                        /* Only root's own mailbox gets here (see deliver_as()): keep uid 0 but
                         * no supplementary group beyond the spool directory's. */
                        if (setgroups(u->n_groups, u->groups) < 0 || setresgid(u->gid, u->gid, u->gid) < 0)
                                return EX_OSERR;
                } else {
                        r = privs_drop_to_ids(u->uid, u->gid, u->groups, u->n_groups);
                        if (r < 0 || getuid() == 0 || geteuid() == 0)
                                return EX_OSERR;
                }
        }
        /* Commands may need set-gid helpers (Debian's procmail is set-gid mail). */
        if (!streq(kind, "command") && !(streq(kind, "mailbox") && s->mailbox_command))
                (void) prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        /* Die with mta-local: the runner, which then gets no reply, will try again, and the
         * dot-lock journal lets that delivery cut off whatever we had written. Going on alone
         * would deliver a message the runner believes undelivered. Set only now because a
         * change of credentials clears it. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
                return EX_TEMPFAIL;
        return 0;
}

static void deliver_in_child(const LocalSettings *s, const RunAs *u, const LocalRequest *req, int queue_fd,
                             LocalOutcome *o) {
        if (streq(req->kind, "mailbox"))
                deliver_mailbox(s, u, req, queue_fd, o);
        else if (streq(req->kind, "file"))
                deliver_file(s, u, req, queue_fd, o);
        else
                deliver_command(s, u, req, queue_fd, o);
}

/* Encodes an outcome as a reply into buf (LOCAL_PROTO_MAX bytes) and frees its forward text. */
static int outcome_encode(LocalOutcome *o, char *buf, size_t *ret_len) {
        LocalReply rep = {
                .status = o->forward ? "forward" :
                          o->status == MAIL_OK ? "ok" : o->status == MAIL_TEMPFAIL ? "tempfail" : "permfail",
                .dsn = o->dsn,
                .text = o->text,
                .forward = o->forward_text,
        };
        int r = local_reply_encode(&rep, buf, LOCAL_PROTO_MAX, ret_len);
        local_outcome_done(o);
        return r;
}

static int child_main(const LocalSettings *s, const RunAs *u, bool switch_user, const LocalRequest *req,
                      int queue_fd, int result_fd, pid_t parent) {
        LocalOutcome o = {};
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r;

        r = child_setup(s, u, switch_user, req->kind, parent);
        if (r != 0)
                return r;
        deliver_in_child(s, u, req, queue_fd, &o);

        buf = malloc(LOCAL_PROTO_MAX);
        if (!buf) {
                local_outcome_done(&o);
                return EX_OSERR;
        }
        if (outcome_encode(&o, buf, &len) < 0)
                return EX_SOFTWARE;
        for (size_t done = 0; done < len;) {
                ssize_t k = write(result_fd, buf + done, len - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return EX_IOERR;
                }
                done += (size_t) k;
        }
        return 0;
}

/* Turns a child's reply into an outcome; -EBADMSG when it is not a complete reply. */
static int outcome_decode(char *buf, size_t len, LocalOutcome *ret) {
        LocalOutcome o = {};
        LocalReply rep;

        if (local_reply_decode(buf, len, &rep) < 0 || !rep.status || !rep.dsn || !rep.text)
                return -EBADMSG;
        o.status = streq(rep.status, "ok") || streq(rep.status, "forward") ? MAIL_OK :
                   streq(rep.status, "permfail") ? MAIL_PERMFAIL : MAIL_TEMPFAIL;
        o.forward = streq(rep.status, "forward");
        snprintf(o.dsn, sizeof o.dsn, "%s", rep.dsn);
        snprintf(o.text, sizeof o.text, "%s", rep.text);
        if (o.forward) {
                o.forward_text = strdup(strempty(rep.forward));
                if (!o.forward_text)
                        return -ENOMEM;
        }
        *ret = o;
        return 0;
}

/* The outcome of a delivery process that gave no usable reply; status -1 when it could not be
 * waited for. */
static void outcome_from_status(int status, LocalOutcome *o) {
        if (status != -1 && WIFSIGNALED(status))
                set_outcome(o, MAIL_TEMPFAIL, "4.3.0", "delivery process killed by signal %d",
                            WTERMSIG(status));
        else
                set_outcome(o, MAIL_TEMPFAIL, "4.3.0", "delivery process failed (exit status %d)",
                            status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int reap(pid_t pid) {
        int status;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return status;
}

/* Account lookups, cached for the connection (one queue run): a run delivers many messages to
 * the same few users, and each getpwnam() may read /etc/passwd or ask NSS again. Only found
 * accounts are kept, so an error or an unknown user is asked again next time. */
#define PW_CACHE_MAX 16

typedef struct PwEntry {
        char *key;
        struct passwd pw;
} PwEntry;

static PwEntry pw_cache[PW_CACHE_MAX];
static size_t pw_cache_next;

static void pw_entry_done(PwEntry *e) {
        free(e->key);
        free(e->pw.pw_name);
        free(e->pw.pw_dir);
        free(e->pw.pw_shell);
        *e = (PwEntry) {};
}

static void pw_cache_clear(void) {
        for (size_t i = 0; i < PW_CACHE_MAX; i++)
                pw_entry_done(&pw_cache[i]);
        pw_cache_next = 0;
}

static int lookup_user(const char *name, const struct passwd **ret) {
        struct passwd *pw;
        PwEntry e = {};

        for (size_t i = 0; i < PW_CACHE_MAX; i++)
                if (pw_cache[i].key && streq(pw_cache[i].key, name)) {
                        *ret = &pw_cache[i].pw;
                        return 0;
                }
        errno = 0;
        pw = getpwnam(name);
        if (!pw)
                return errno > 0 && errno != ENOENT && errno != ESRCH ? -errno : -ESRCH;
        e.key = strdup(name);
        e.pw = (struct passwd) {
                .pw_name = strdup(pw->pw_name),
                .pw_uid = pw->pw_uid,
                .pw_gid = pw->pw_gid,
                .pw_dir = strdup(strempty(pw->pw_dir)),
                .pw_shell = strdup(strempty(pw->pw_shell)),
        };
        if (!e.key || !e.pw.pw_name || !e.pw.pw_dir || !e.pw.pw_shell) {
                pw_entry_done(&e);
                return -ENOMEM;
        }
        pw_entry_done(&pw_cache[pw_cache_next]);
        pw_cache[pw_cache_next] = e;
        *ret = &pw_cache[pw_cache_next].pw;
        pw_cache_next = (pw_cache_next + 1) % PW_CACHE_MAX;
        return 0;
}

/* ---- per-credential workers ---- */

#define WORKERS_MAX 8

typedef struct Worker {
        pid_t pid;
        int fd;                       /* our end of the socketpair */
        uint64_t used;                /* for least recently used eviction */
        bool switch_user;
        char *kind;                   /* "mailbox" or "file": the rights differ */
        RunAs u;
} Worker;

static Worker workers[WORKERS_MAX];
static size_t n_workers;
static uint64_t worker_clock;

/* How the last stopped workers ended: requests still outstanding at one (local_job_send()) get the
 * answer of a dead worker, the same for all of them. */
#define GRAVES_MAX 8

typedef struct Grave {
        pid_t pid;
        int status;
} Grave;

static Grave graves[GRAVES_MAX];
static size_t n_graves;

static bool run_as_equal(const RunAs *a, const RunAs *b) {
        return a->uid == b->uid && a->gid == b->gid && a->n_groups == b->n_groups &&
               memcmp(a->groups, b->groups, a->n_groups * sizeof(gid_t)) == 0 && streq(a->name, b->name) &&
               streq(a->home, b->home) && streq(a->shell, b->shell);
}

static int run_as_copy(const RunAs *from, RunAs *ret) {
        RunAs r = *from;

        r.name = strdup(from->name);
        r.home = strdup(from->home);
        r.shell = strdup(from->shell);
        if (!r.name || !r.home || !r.shell) {
                run_as_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

/* In a freshly forked process: no worker may reach another's socket. */
static void workers_close_inherited(void) {
        for (size_t i = 0; i < n_workers; i++)
                safe_close(workers[i].fd);
}

/* Closes the worker's socket (it exits at EOF) and reaps it; returns its wait status. */
static int worker_stop(size_t i, bool kill_it) {
        Worker *w = &workers[i];
        int status;

        w->fd = safe_close(w->fd);
        if (kill_it)
                (void) kill(w->pid, SIGKILL);
        status = reap(w->pid);
        graves[n_graves++ % GRAVES_MAX] = (Grave) { .pid = w->pid, .status = status };
        run_as_done(&w->u);
        free(w->kind);
        workers[i] = workers[--n_workers];
        workers[n_workers] = (Worker) { .fd = -EBADF };
        return status;
}

/* Receives one request from the parent: 1 with it in *req (pointing into buf) and *ret_fd, 0 at EOF,
 * -EIO when the socket failed, -EBADMSG for anything the parent never sends (it sends only what it
 * checked, so something is badly wrong, and its answer for a dead worker is a tempfail). */
static int worker_receive(int sock, const char *kind, char *buf, LocalRequest *req, int *ret_fd) {
        _cleanup_close_ int queue_fd = -EBADF;
        size_t len = 0;
        int r;

        r = local_server_receive(sock, buf, LOCAL_PROTO_MAX + 1, &len, &queue_fd);
        if (r == 0)
                return 0;
        if (r < 0)
                return -EIO;
        *req = (LocalRequest) {};
        if (len > LOCAL_PROTO_MAX || queue_fd < 0 || local_request_decode(buf, len, req) < 0 || !req->kind ||
            !streq(req->kind, kind))
                return -EBADMSG;
        *ret_fd = TAKE_FD(queue_fd);
        return 1;
}

static int worker_reply(int sock, LocalOutcome *o, char *out) {
        size_t len;

        if (outcome_encode(o, out, &len) < 0)
                return -EBADMSG;
        if (send(sock, out, len, MSG_NOSIGNAL) < 0)
                return -EIO;
        return 0;
}

#define GROUP_MAX 32
#define GROUP_NONE 2      /* worker_mailbox_group() took every request it received */

/* Group commit: appends the mailbox delivery *req (for target t) and every mailbox delivery for the
 * same mbox that is already waiting on sock (up to GROUP_MAX), under one acquisition of the locks,
 * then makes them durable with one fsync, releases the locks and only then answers them all, in
 * order: an "ok" is never sent before the fsync that covers it. A request in between that needs no
 * write (forwarded, or failed before the mbox) is answered in its place. A request that goes
 * elsewhere ends the group; it is left in *req and *queue_fd and its receive result returned, as is
 * EOF or a receive failure; GROUP_NONE when there is nothing left over, -EIO or -EBADMSG when a
 * reply could not be sent. */
static int worker_mailbox_group(const LocalSettings *s, const RunAs *u, int sock, char *buf, char *out,
                                LocalRequest *req, int *queue_fd, const MboxTarget *t) {
        _cleanup_free_ LocalOutcome *res = calloc(GROUP_MAX, sizeof(LocalOutcome));
        bool written[GROUP_MAX] = {};
        MailboxOptions o = mailbox_options(s, u);
        MailboxGroup g;
        MailboxOutcome mo = {};
        int left = GROUP_NONE, r;
        size_t n = 0;

        if (!res) {
                *queue_fd = safe_close(*queue_fd);
                LocalOutcome oom = {};
                set_outcome(&oom, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return worker_reply(sock, &oom, out) < 0 ? -EIO : GROUP_NONE;
        }
        r = mailbox_group_open(&g, t->dir_fd, t->name, &o, &mo);
        if (r <= 0) {
                *queue_fd = safe_close(*queue_fd);
                mbox_outcome(t, r, &mo, &res[0]);
                r = worker_reply(sock, &res[0], out);
                return r < 0 ? r : GROUP_NONE;
        }
        for (;;) {
                MboxEnvelope env = { .sender = req->sender, .recipient = req->recipient,
                                     .date = time(NULL) };

                r = mailbox_group_append(&g, *queue_fd, req->offset, req->size, &env, &mo);
                *queue_fd = safe_close(*queue_fd);
                mbox_outcome(t, r, &mo, &res[n]);
                written[n++] = true;

                /* Take the next one only if it is already there: never wait with the locks held. */
                for (;;) {
                        MboxTarget next = { .dir_fd = -EBADF };

                        if (n == GROUP_MAX || !local_server_readable_now(sock))
                                goto commit;
                        left = worker_receive(sock, "mailbox", buf, req, queue_fd);
                        if (left != 1)
                                goto commit;
                        r = mailbox_prepare(s, u, req, &next, &res[n]);
                        if (r == 0) {
                                *queue_fd = safe_close(*queue_fd);
                                written[n++] = false;
                                left = GROUP_NONE;
                                continue;
                        }
                        bool same = r == 1 && streq(next.label, t->label);
                        mbox_target_done(&next);
                        if (!same)
                                goto commit;   /* left == 1: the caller delivers it */
                        left = GROUP_NONE;
                        break;
                }
        }

commit:
        r = mailbox_group_commit(&g);
        if (r < 0) {
                /* Cut back to before the group: none of it is delivered, and a size check that failed
                 * counted messages that are gone now. */
                log_warning("Failed to write %s to disk: %s", t->label, strerror(-r));
                for (size_t i = 0; i < n; i++)
                        if (written[i])
                                set_outcome(&res[i], MAIL_TEMPFAIL,
                                            r == -ENOSPC || r == -EDQUOT ? "4.3.0" : "4.2.0",
                                            "cannot write %s to disk: %s", t->label, strerror(-r));
        }
        mailbox_group_close(&g);
        for (size_t i = 0; i < n; i++) {
                r = worker_reply(sock, &res[i], out);
                if (r < 0) {
                        for (size_t j = i + 1; j < n; j++)
                                local_outcome_done(&res[j]);
                        if (left == 1)
                                *queue_fd = safe_close(*queue_fd);
                        return r;
                }
        }
        return left;
}

static int worker_main(const LocalSettings *s, const RunAs *u, bool switch_user, const char *kind, int sock,
                       pid_t parent) {
        _cleanup_free_ char *buf = NULL, *out = NULL;
        /* A request left over by a group outlives the loop's turn. */
        _cleanup_close_ int queue_fd = -EBADF;
        LocalRequest req = {};
        bool have = false;
        int r;

        r = child_setup(s, u, switch_user, kind, parent);
        if (r != 0)
                return r;
        buf = malloc(LOCAL_PROTO_MAX + 1);
        out = malloc(LOCAL_PROTO_MAX);
        if (!buf || !out)
                return EX_OSERR;
        for (;;) {
                LocalOutcome o = {};

                if (!have)
                        r = worker_receive(sock, kind, buf, &req, &queue_fd);
                have = false;
                if (r == GROUP_NONE)
                        continue;
                if (r <= 0)
                        return r == 0 ? 0 : r == -EIO ? EX_IOERR : EX_SOFTWARE;

                if (streq(kind, "mailbox")) {
                        _cleanup_(mbox_target_done) MboxTarget t = { .dir_fd = -EBADF };
                        int k = mailbox_prepare(s, u, &req, &t, &o);
                        if (k == 1) {
                                /* What is left over was received into buf, req and queue_fd. */
                                r = worker_mailbox_group(s, u, sock, buf, out, &req, &queue_fd, &t);
                                have = true;
                                continue;
                        }
                        if (k == 2)
                                deliver_mailbox_other(s, u, &req, queue_fd, &o);
                } else
                        deliver_in_child(s, u, &req, queue_fd, &o);
                queue_fd = safe_close(queue_fd);
                r = worker_reply(sock, &o, out);
                if (r < 0)
                        return r == -EIO ? EX_IOERR : EX_SOFTWARE;
        }
}

/* The live worker for these credentials, started when there is none. -errno when no process
 * could be started. */
static int worker_get(const LocalSettings *s, const RunAs *u, bool switch_user, const char *kind,
                      size_t *ret) {
        _cleanup_free_ char *kind_copy = NULL;
        RunAs copy = {};
        int sv[2], r;
        pid_t pid, parent = getpid();

        for (size_t i = 0; i < n_workers; i++)
                if (workers[i].switch_user == switch_user && streq(workers[i].kind, kind) &&
                    run_as_equal(&workers[i].u, u)) {
                        workers[i].used = ++worker_clock;
                        *ret = i;
                        return 0;
                }
        if (n_workers == WORKERS_MAX) {
                size_t lru = 0;
                for (size_t i = 1; i < n_workers; i++)
                        if (workers[i].used < workers[lru].used)
                                lru = i;
                (void) worker_stop(lru, false);
        }
        kind_copy = strdup(kind);
        if (!kind_copy)
                return -ENOMEM;
        r = run_as_copy(u, &copy);
        if (r < 0)
                return r;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                r = negative_errno();
                run_as_done(&copy);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                safe_close(sv[0]);
                safe_close(sv[1]);
                run_as_done(&copy);
                return r;
        }
        if (pid == 0) {
                safe_close(sv[0]);
                workers_close_inherited();
                _exit(worker_main(s, u, switch_user, kind, sv[1], parent));
        }
        safe_close(sv[1]);
        workers[n_workers] = (Worker) {
                .pid = pid,
                .fd = sv[0],
                .used = ++worker_clock,
                .switch_user = switch_user,
                .kind = TAKE_PTR(kind_copy),
                .u = copy,
        };
        *ret = n_workers++;
        return 0;
}

struct LocalJob {
        const LocalSettings *s;
        const LocalRequest *req;      /* borrowed, until sent */
        int queue_fd;                 /* borrowed, until sent */
        const char *kind;             /* a literal */
        RunAs u;
        bool switch_user;
        bool by_worker;
        pid_t worker;                 /* once sent */
};

LocalJob *local_job_free(LocalJob *j) {
        if (!j)
                return NULL;
        run_as_done(&j->u);
        free(j);
        return NULL;
}

bool local_job_by_worker(const LocalJob *j) {
        return j->by_worker;
}

bool local_job_same_worker(const LocalJob *a, const LocalJob *b) {
        return a->by_worker && b->by_worker && a->switch_user == b->switch_user &&
               streq(a->kind, b->kind) && run_as_equal(&a->u, &b->u);
}

/* Hands a job to its worker. Once the request is sent, a worker that gives no usable reply is
 * treated exactly like a per-delivery child that died: reaped and answered tempfail. */
int local_job_send(LocalJob *j) {
        _cleanup_free_ char *buf = malloc(LOCAL_PROTO_MAX);
        size_t len, i;
        int r;

        if (!j->by_worker || j->worker > 0)
                return -EINVAL;
        if (!buf)
                return -ENOMEM;
        r = local_request_encode(j->req, buf, LOCAL_PROTO_MAX, &len);
        if (r < 0)
                return r;
        /* A worker that died (killed from outside) cannot take the request: start a new one, once.
         * Nothing was delivered then; what it still owed answers are those of a dead worker. */
        for (int attempt = 0;; attempt++) {
                r = worker_get(j->s, &j->u, j->switch_user, j->kind, &i);
                if (r < 0)
                        return r;
                r = local_proto_send_with_fd(workers[i].fd, buf, len, j->queue_fd);
                if (r >= 0)
                        break;
                (void) worker_stop(i, true);
                if (attempt > 0)
                        return r;
        }
        j->worker = workers[i].pid;
        j->req = NULL;
        j->queue_fd = -EBADF;
        return 0;
}

static int job_wait(LocalJob *j, LocalOutcome *ret) {
        _cleanup_free_ char *buf = malloc(LOCAL_PROTO_MAX + 1);
        size_t i;
        ssize_t n;
        int r;

        if (!buf)
                return -ENOMEM;
        for (i = 0; i < n_workers; i++)
                if (workers[i].pid == j->worker)
                        break;
        if (i == n_workers) {
                /* It died with this request outstanding. */
                int status = -1;
                for (size_t g = 0; g < GRAVES_MAX; g++)
                        if (graves[g].pid == j->worker)
                                status = graves[g].status;
                outcome_from_status(status, ret);
                return 0;
        }

        do
                n = recv(workers[i].fd, buf, LOCAL_PROTO_MAX + 1, 0);
        while (n < 0 && errno == EINTR);
        if (n > 0 && (size_t) n <= LOCAL_PROTO_MAX) {
                r = outcome_decode(buf, (size_t) n, ret);
                if (r != -EBADMSG) {
                        if (r < 0)
                                (void) worker_stop(i, true);
                        return r;
                }
        }
        /* EOF: the worker died (or gave up); anything else: it cannot be trusted to go on. */
        int status = worker_stop(i, n != 0);
        if (n > 0)
                status = 0;
        outcome_from_status(status, ret);
        return 0;
}

void local_deliver_shutdown(void) {
        while (n_workers > 0)
                (void) worker_stop(n_workers - 1, false);
        pw_cache_clear();
}

/* Decides the identity: the user for a mailbox (root's own mailbox as root), the user for files
 * and commands but default_privs in place of root. */
static int deliver_as(const LocalSettings *s, const LocalRequest *req, RunAs *ret, LocalOutcome *out) {
        const struct passwd *pw;
        bool mailbox = streq(req->kind, "mailbox");
        struct stat st;
        int r;

        r = lookup_user(req->user, &pw);
        if (r == -ESRCH) {
                set_outcome(out, MAIL_PERMFAIL, "5.1.1", "unknown user: \"%s\"", req->user);
                return r;
        }
        if (r < 0) {
                set_outcome(out, MAIL_TEMPFAIL, "4.3.0", "cannot look up user %s: %s", req->user,
                            strerror(-r));
                return r;
        }
        /* mailbox_command is a command like any other: never as root, never with group mail. */
        bool command = !mailbox || s->mailbox_command;
        if (command && pw->pw_uid == 0) {
                r = lookup_user(s->default_privs, &pw);
                if (r < 0 || pw->pw_uid == 0) {
                        set_outcome(out, MAIL_TEMPFAIL, "4.3.5", "default_privs account \"%s\" is unusable",
                                    s->default_privs);
                        return -EPERM;
                }
        }
        r = run_as_from_passwd(pw, ret);
        if (r < 0) {
                set_outcome(out, MAIL_TEMPFAIL, "4.3.0", "out of memory");
                return r;
        }
        /* The spool directory is root:mail 2775 on Debian: creating a mailbox or NAME.lock there
         * needs its group. Only mailbox deliveries get it, and no other: a command with group mail
         * could remove or replace anyone's mailbox. Never group root. */
        if (!command && !s->home_mailbox && stat(s->spool_dir, &st) == 0 && st.st_gid != 0 &&
            st.st_gid != ret->gid)
                ret->groups[ret->n_groups++] = st.st_gid;
        return 0;
}

int local_job_prepare(const LocalSettings *s, const LocalRequest *req, int queue_fd, LocalJob **ret_job,
                      LocalOutcome *ret) {
        _cleanup_(run_as_done) RunAs u = {};
        bool switch_user;
        struct stat st;
        int r;

        *ret_job = NULL;
        if (local_request_check(req, ret) < 0)
                return 0;
        if (streq(req->kind, "mailbox") && !local_user_name_valid(req->user)) {
                set_outcome(ret, MAIL_PERMFAIL, "5.1.3", "invalid mailbox name \"%s\"", req->user);
                return 0;
        }
        if (fstat(queue_fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            req->offset + req->size > (uint64_t) st.st_size) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "queue file does not hold the content announced");
                return 0;
        }
        if (deliver_as(s, req, &u, ret) < 0)
                return 0;
        /* The queue file came from the runner as an open fd: reading it here opens nothing. */
        r = mbox_has_delivered_to(queue_fd, req->offset, req->size, req->recipient);
        if (r < 0) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot read queue file: %s", strerror(-r));
                return 0;
        }
        if (r > 0) {
                set_outcome(ret, MAIL_PERMFAIL, "5.4.6", "mail forwarding loop for %s", req->recipient);
                return 0;
        }

        switch_user = geteuid() == 0;
        if (!switch_user && u.uid != geteuid()) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot deliver as other user while not root");
                return 0;
        }
        if (streq(req->kind, "mailbox") && u.uid == 0 && !switch_user) {
                set_outcome(ret, MAIL_TEMPFAIL, "4.3.0", "cannot deliver as other user while not root");
                return 0;
        }

        LocalJob *j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        *j = (LocalJob) {
                .s = s,
                .req = req,
                .queue_fd = queue_fd,
                .kind = streq(req->kind, "mailbox") ? "mailbox" :
                        streq(req->kind, "file") ? "file" : "command",
                .u = u,
                .switch_user = switch_user,
                .by_worker = !streq(req->kind, "command") &&
                             !(streq(req->kind, "mailbox") && s->mailbox_command),
        };
        u = (RunAs) {};
        *ret_job = j;
        return 0;
}

int local_deliver(const LocalSettings *s, const LocalRequest *req, int queue_fd, LocalOutcome *ret) {
        LocalJob *j = NULL;
        int r;

        r = local_job_prepare(s, req, queue_fd, &j, ret);
        if (r < 0 || !j)
                return r;
        r = local_job_finish(j, ret);
        local_job_free(j);
        return r;
}

int local_job_finish(LocalJob *j, LocalOutcome *ret) {
        const LocalSettings *s = j->s;
        const LocalRequest *req = j->req;
        const RunAs *uu = &j->u;
        _cleanup_close_ int rd = -EBADF, wr = -EBADF;
        _cleanup_free_ char *buf = NULL;
        bool switch_user = j->switch_user;
        int queue_fd = j->queue_fd;
        size_t len = 0;
        int fds[2], status, r;
        pid_t pid;

        if (j->by_worker) {
                if (j->worker == 0) {
                        r = local_job_send(j);
                        if (r < 0)
                                return r;
                }
                return job_wait(j, ret);
        }

        /* Commands keep a process of their own per delivery. */
        if (pipe2(fds, O_CLOEXEC) < 0)
                return negative_errno();
        rd = fds[0];
        wr = fds[1];
        pid_t parent = getpid();
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                rd = safe_close(rd);
                workers_close_inherited();
                _exit(child_main(s, uu, switch_user, req, queue_fd, wr, parent));
        }
        wr = safe_close(wr);

        buf = malloc(LOCAL_PROTO_MAX + 1);
        if (!buf) {
                (void) kill(pid, SIGKILL);
                (void) reap(pid);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t k = read(rd, buf + len, LOCAL_PROTO_MAX - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (k == 0 || (len += (size_t) k) == LOCAL_PROTO_MAX)
                        break;
        }
        status = reap(pid);
        if (status == 0) {
                r = outcome_decode(buf, len, ret);
                if (r != -EBADMSG)
                        return r;
        }
        outcome_from_status(status, ret);
        return 0;
}
