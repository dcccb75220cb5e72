/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/map.h"
#include "common/netlist.h"
#include "common/params.h"
#include "common/queue.h"
#include "common/strv.h"
#include "tools/ctl/ctl.h"

typedef struct Check {
        const Config *config;
        unsigned errors;
        unsigned warnings;
} Check;

static _printf_(2, 3) void problem(Check *k, const char *fmt, ...) {
        int saved_errno = errno;     /* for %m */
        va_list ap;

        k->errors++;
        fputs("mtactl: error: ", stderr);
        va_start(ap, fmt);
        errno = saved_errno;
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static _printf_(2, 3) void warning(Check *k, const char *fmt, ...) {
        int saved_errno = errno;     /* for %m */
        va_list ap;

        k->warnings++;
        fputs("mtactl: warning: ", stderr);
        va_start(ap, fmt);
        errno = saved_errno;
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* "FILE:LINE: " for a parameter set in main.cf, "" for a default. */
static const char *where(Check *k, const char *name, char *buf, size_t size) {
        unsigned line = config_line_of(k->config, name);

        if (line == 0) {
                if (config_is_set(k->config, name))
                        snprintf(buf, size, "%s: ", config_path(k->config));
                else
                        snprintf(buf, size, "default: ");
        } else
                snprintf(buf, size, "%s:%u: ", config_path(k->config), line);
        return buf;
}

static void check_unknown(Check *k) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ unsigned *lines = NULL;
        size_t i = 0;

        if (config_unknown(k->config, &names, &lines) < 0) {
                problem(k, "out of memory");
                return;
        }
        for (char **n = names; *n; n++, i++) {
                const char *s = params_suggest(*n);
                if (s)
                        warning(k, "%s:%u: unknown parameter '%s', did you mean '%s'?",
                                config_path(k->config), lines[i], *n, s);
                else
                        warning(k, "%s:%u: unknown parameter '%s'", config_path(k->config), lines[i], *n);
        }
}

/* Parameters mta accepts but does not act on, where ignoring a setting changes what happens to mail
 * or its protection: an administrator who sets one must hear that it is ignored. Purely
 * informational ones (directories, compatibility_level, TLS session caches) stay quiet. */
static const char *const ignored_but_significant[] = {
        "always_bcc", "body_checks", "canonical_maps", "content_filter", "delay_warning_time",
        "disable_vrfy_command", "header_checks", "luser_relay",
        "masquerade_domains", "mime_header_checks", "non_smtpd_milters", "queue_run_delay",
        "recipient_bcc_maps", "recipient_canonical_maps", "relay_domains", "relay_recipient_maps",
        "sender_bcc_maps", "sender_canonical_maps", "sender_dependent_relayhost_maps", "smtp_enforce_tls",
        "smtp_generic_maps", "smtp_sasl_auth_enable", "smtp_sasl_password_maps", "smtp_tls_policy_maps",
        "smtp_use_tls", "smtpd_client_restrictions", "smtpd_data_restrictions",
        "smtpd_end_of_data_restrictions", "smtpd_enforce_tls", "smtpd_helo_restrictions", "smtpd_milters",
        "smtpd_sasl_auth_enable", "smtpd_sender_restrictions", "smtpd_tls_auth_only", "smtpd_tls_req_ccert",
        "smtpd_tls_wrappermode", "smtpd_use_tls", "soft_bounce", "transport_maps",
        "virtual_mailbox_domains", "virtual_mailbox_maps",
};

static void check_ignored(Check *k) {
        char w[512];

        for (size_t i = 0; i < ELEMENTSOF(ignored_but_significant); i++) {
                const char *name = ignored_but_significant[i];
                const char *v = config_get_raw(k->config, name);
                const char *d = params_default(name);
                if (!config_is_set(k->config, name) || !v || !d || streq(v, d))
                        continue;
                warning(k, "%s%s is accepted for compatibility but has no effect in mta",
                        where(k, name, w, sizeof w), name);
        }
}

static void check_types(Check *k) {
        char w[512];

        /* Typed values are parsed when a service starts; finding a bad one here is the point. */
        for (size_t i = 0; i < params_table_size; i++) {
                const ParamInfo *p = &params_table[i];
                const char *v = config_get(k->config, p->name);
                const char *what = NULL;
                uint64_t u;
                int64_t n;
                bool b;
                int r = 0;

                switch (p->type) {
                case PARAM_BOOL:
                        r = config_get_bool(k->config, p->name, &b);
                        what = "yes or no";
                        break;
                case PARAM_SIZE:
                        r = config_get_size(k->config, p->name, &u);
                        what = "a size in bytes";
                        break;
                case PARAM_TIME:
                        r = config_get_time(k->config, p->name, &u);
                        what = "a time: number with optional unit s, m, h, d or w";
                        break;
                case PARAM_INT:
                        r = config_get_int(k->config, p->name, &n);
                        what = "an integer";
                        break;
                default:
                        break;
                }
                if (r < 0)
                        problem(k, "%sbad value '%s' for %s: expected %s", where(k, p->name, w, sizeof w),
                                strempty(v), p->name, what);
        }

        uint64_t mailbox, message;
        if (config_get_size(k->config, "mailbox_size_limit", &mailbox) >= 0 &&
            config_get_size(k->config, "message_size_limit", &message) >= 0 && mailbox != 0 &&
            (message == 0 || mailbox < message))
                problem(k, "%smailbox_size_limit (%" PRIu64 ") is smaller than message_size_limit (%" PRIu64
                        "); a message that is accepted could never be delivered",
                        where(k, "mailbox_size_limit", w, sizeof w), mailbox, message);
}

static void check_directory(Check *k, const char *param, const struct passwd *owner) {
        const char *path = config_get(k->config, param);
        char w[512];
        struct stat st;

        if (isempty(path)) {
                problem(k, "%s%s is empty", where(k, param, w, sizeof w), param);
                return;
        }
        if (path[0] != '/') {
                problem(k, "%s%s = %s: not an absolute path", where(k, param, w, sizeof w), param, path);
                return;
        }
        if (stat(path, &st) < 0) {
                problem(k, "%s (%s): %m", path, param);
                return;
        }
        if (!S_ISDIR(st.st_mode)) {
                problem(k, "%s (%s): not a directory", path, param);
                return;
        }
        if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
                problem(k, "%s (%s): writable by everyone (mode %04o) without the sticky bit", path, param,
                        (unsigned) (st.st_mode & 07777));
        if (owner && st.st_uid != owner->pw_uid)
                problem(k, "%s (%s): owned by uid %u, not by mail_owner %s (uid %u)", path, param,
                        (unsigned) st.st_uid, owner->pw_name, (unsigned) owner->pw_uid);
        if (!owner && st.st_uid != 0 && (st.st_mode & S_IWGRP) == 0 && (st.st_mode & S_IWUSR) == 0)
                warning(k, "%s (%s): not writable by its owner (mode %04o)", path, param,
                        (unsigned) (st.st_mode & 07777));
}

/* The queue's subdirectories are created on first use, so a missing one is fine; one that exists must
 * belong to mail_owner and be writable by nobody else, or another user could plant or read mail. */
static void check_queue_subdirs(Check *k, const struct passwd *owner) {
        const char *queue = config_get(k->config, "queue_directory");

        if (isempty(queue) || queue[0] != '/')
                return;
        for (QueueDir d = 0; d < _QUEUE_DIR_MAX; d++) {
                _cleanup_free_ char *path = NULL;
                struct stat st;

                if (asprintf(&path, "%s/%s", queue, queue_dir_name(d)) < 0) {
                        problem(k, "out of memory");
                        return;
                }
                if (lstat(path, &st) < 0) {
                        if (errno != ENOENT)
                                problem(k, "%s: %m", path);
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        problem(k, "%s: not a directory", path);
                        continue;
                }
                if (st.st_mode & (S_IWGRP | S_IWOTH))
                        problem(k, "%s: writable by group or others (mode %04o)", path,
                                (unsigned) (st.st_mode & 07777));
                if (owner && st.st_uid != owner->pw_uid)
                        problem(k, "%s: owned by uid %u, not by mail_owner %s (uid %u)", path,
                                (unsigned) st.st_uid, owner->pw_name, (unsigned) owner->pw_uid);
        }
}

static void check_directories(Check *k) {
        const char *owner_name = config_get(k->config, "mail_owner");
        struct passwd *pw = NULL;
        char w[512];

        if (isempty(owner_name))
                problem(k, "%smail_owner is empty", where(k, "mail_owner", w, sizeof w));
        else {
                errno = 0;
                pw = getpwnam(owner_name);
                if (!pw)
                        problem(k, "%smail_owner %s: no such user", where(k, "mail_owner", w, sizeof w),
                                owner_name);
                else if (pw->pw_uid == 0)
                        problem(k, "%smail_owner %s: must not be root", where(k, "mail_owner", w, sizeof w),
                                owner_name);
        }
        /* Copy: the next getpwnam() may reuse the static buffer. */
        struct passwd owner = {};
        _cleanup_free_ char *owner_copy = NULL;
        if (pw) {
                owner_copy = strdup(pw->pw_name);
                owner = *pw;
                owner.pw_name = owner_copy;
        }
        check_directory(k, "queue_directory", pw && owner_copy ? &owner : NULL);
        check_queue_subdirs(k, pw && owner_copy ? &owner : NULL);
        check_directory(k, "mail_spool_directory", NULL);

        const char *privs = config_get(k->config, "default_privs");
        if (!isempty(privs)) {
                struct passwd *d = getpwnam(privs);
                if (!d)
                        problem(k, "%sdefault_privs %s: no such user",
                                where(k, "default_privs", w, sizeof w), privs);
                else if (d->pw_uid == 0)
                        problem(k, "%sdefault_privs %s: must not be root",
                                where(k, "default_privs", w, sizeof w), privs);
        }
}

static void check_map(Check *k, const char *param, const char *ref, const char *tool) {
        _cleanup_free_ char *path = NULL, *db = NULL;
        struct stat src, dst;
        char w[512];
        int r;

        r = map_ref_parse(ref, NULL, &path);
        if (r == -EOPNOTSUPP) {
                problem(k, "%s%s: unsupported map type in '%s' (use hash:, btree: or gdbm:)",
                        where(k, param, w, sizeof w), param, ref);
                return;
        }
        if (r >= 0)
                r = map_ref_db_path(ref, &db);
        if (r < 0) {
                problem(k, "%s%s: malformed map reference '%s'", where(k, param, w, sizeof w), param, ref);
                return;
        }
        if (stat(path, &src) < 0) {
                if (errno != ENOENT) {
                        problem(k, "%s (%s): %m", path, param);
                        return;
                }
                /* A compiled map without its source is usable, only not rebuildable. */
                if (stat(db, &dst) < 0)
                        problem(k, "%s (%s): missing, and so is %s", path, param, db);
                else
                        warning(k, "%s (%s): source file missing; %s cannot be rebuilt", path, param, db);
                return;
        }
        if (stat(db, &dst) < 0) {
                if (errno == ENOENT)
                        problem(k, "%s (%s): not compiled; run %s %s", db, param, tool, path);
                else
                        problem(k, "%s (%s): %m", db, param);
                return;
        }
        if (dst.st_mtim.tv_sec < src.st_mtim.tv_sec ||
            (dst.st_mtim.tv_sec == src.st_mtim.tv_sec && dst.st_mtim.tv_nsec < src.st_mtim.tv_nsec))
                problem(k, "%s (%s): older than %s; run %s %s", db, param, path, tool, path);
}

static void check_maps(Check *k) {
        static const struct {
                const char *param;
                const char *tool;
        } params[] = {
                { "alias_database", "mta-alias" },
                { "alias_maps", "mta-alias" },
                { "virtual_alias_maps", "mta-map" },
        };
        _cleanup_strv_free_ char **seen = NULL;

        for (size_t i = 0; i < ELEMENTSOF(params); i++) {
                _cleanup_strv_free_ char **refs = NULL;
                if (config_get_list(k->config, params[i].param, &refs) < 0) {
                        problem(k, "out of memory");
                        return;
                }
                for (char **r = refs; *r; r++) {
                        /* alias_maps and alias_database usually name the same file: report it once. */
                        if (strv_contains(seen, *r))
                                continue;
                        if (strv_extend(&seen, *r) < 0) {
                                problem(k, "out of memory");
                                return;
                        }
                        check_map(k, params[i].param, *r, params[i].tool);
                }
        }
}

static bool readable_by(const struct stat *st, const struct passwd *pw) {
        if (pw->pw_uid == 0 || (st->st_mode & S_IROTH))
                return true;
        if (st->st_uid == pw->pw_uid)
                return st->st_mode & S_IRUSR;
        if (!(st->st_mode & S_IRGRP))
                return false;
        if (st->st_gid == pw->pw_gid)
                return true;
        gid_t groups[256];
        int n = (int) ELEMENTSOF(groups);
        if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
                return false;
        for (int i = 0; i < n; i++)
                if (groups[i] == st->st_gid)
                        return true;
        return false;
}

static void check_tls_file(Check *k, const char *param, bool secret) {
        const char *path = config_get(k->config, param);
        const char *owner_name = config_get(k->config, "mail_owner");
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        char w[512];

        if (isempty(path)) {
                problem(k, "%s%s is empty but smtpd_tls_security_level = %s", where(k, param, w, sizeof w),
                        param, config_get(k->config, "smtpd_tls_security_level"));
                return;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                problem(k, "%s (%s): %m", path, param);
                return;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                problem(k, "%s (%s): not a regular file", path, param);
                return;
        }
        if (secret && (st.st_mode & S_IROTH))
                warning(k, "%s (%s): private key readable by everyone (mode %04o)", path, param,
                        (unsigned) (st.st_mode & 07777));
        /* The receiver never runs as root; a root-only key would fail only at the first STARTTLS. */
        struct passwd *pw = isempty(owner_name) ? NULL : getpwnam(owner_name);
        if (geteuid() == 0 && pw && !readable_by(&st, pw))
                warning(k, "%s (%s): not readable by mail_owner %s", path, param, pw->pw_name);
}

static bool level_valid(const char *level, const char *const *valid) {
        for (; *valid; valid++)
                if (streq(level, *valid))
                        return true;
        return false;
}

static void check_tls(Check *k) {
        static const char *const server_levels[] = { "", "none", "may", "encrypt", NULL };
        static const char *const client_levels[] = { "", "none", "may", "encrypt", "dane", "dane-only",
                                                     "fingerprint", "verify", "secure", NULL };
        const char *level = config_get(k->config, "smtpd_tls_security_level");
        const char *client = config_get(k->config, "smtp_tls_security_level");
        char w[512];

        if (!level_valid(level, server_levels))
                problem(k, "%sbad smtpd_tls_security_level '%s': expected none, may or encrypt",
                        where(k, "smtpd_tls_security_level", w, sizeof w), level);
        else if (streq(level, "may") || streq(level, "encrypt")) {
                check_tls_file(k, "smtpd_tls_cert_file", false);
                check_tls_file(k, "smtpd_tls_key_file", true);
        }
        if (!level_valid(client, client_levels))
                problem(k, "%sbad smtp_tls_security_level '%s': expected none, may, encrypt, dane, verify "
                        "or secure", where(k, "smtp_tls_security_level", w, sizeof w), client);
}

static void check_mynetworks(Check *k) {
        _cleanup_(netlist_freep) NetList *l = NULL;
        _cleanup_free_ char *err = NULL;
        char w[512];

        if (netlist_parse(config_get(k->config, "mynetworks"), &l, &err) < 0)
                problem(k, "%smynetworks: %s", where(k, "mynetworks", w, sizeof w),
                        err ? err : "cannot be parsed");
}

static bool hostname_valid(const char *s, size_t n) {
        size_t label = 0;

        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];
                if (ch == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                } else if (isalnum((unsigned char) ch) || ch == '-' || ch == '_') {
                        if (ch == '-' && label == 0)
                                return false;
                        if (++label > 63)
                                return false;
                } else
                        return false;
        }
        return s[n - 1] != '-';
}

static bool port_valid(const char *p) {
        if (!*p)
                return false;
        if (isdigit((unsigned char) *p)) {
                unsigned long v = 0;
                for (; *p; p++) {
                        if (!isdigit((unsigned char) *p))
                                return false;
                        v = v * 10 + (unsigned long) (*p - '0');
                        if (v > 65535)
                                return false;
                }
                return v > 0;
        }
        /* A service name, as "submission". */
        for (; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '-')
                        return false;
        return true;
}

/* relayhost: host, host:port, [host], [host]:port; an address goes in brackets, as [192.0.2.1] or
 * [ipv6:2001:db8::1]. */
static bool relayhost_valid(const char *v) {
        const char *host, *port = NULL;
        size_t n;

        if (*v == '[') {
                const char *close = strchr(v, ']');
                if (!close)
                        return false;
                host = v + 1;
                n = (size_t) (close - host);
                if (close[1] == ':')
                        port = close + 2;
                else if (close[1])
                        return false;
                _cleanup_free_ char *h = strndup(host, n);
                if (!h)
                        return false;
                _cleanup_(netlist_freep) NetList *l = NULL;
                const char *addr = strncasecmp(h, "ipv6:", 5) == 0 ? h + 5 : h;
                bool is_addr = netlist_parse(addr, &l, NULL) >= 0 && !strpbrk(addr, "/ ,");
                if (!is_addr && !hostname_valid(h, n))
                        return false;
        } else {
                const char *colon = strchr(v, ':');
                n = colon ? (size_t) (colon - v) : strlen(v);
                if (colon)
                        port = colon + 1;
                if (!hostname_valid(v, n))
                        return false;
        }
        return !port || port_valid(port);
}

static void check_relayhost(Check *k) {
        const char *v = config_get(k->config, "relayhost");
        char w[512];

        if (!isempty(v) && !relayhost_valid(v))
                problem(k, "%sbad relayhost '%s': expected host, host:port, [host] or [host]:port",
                        where(k, "relayhost", w, sizeof w), v);
}

static void check_hostname(Check *k) {
        const char *h = config_get(k->config, "myhostname");
        char w[512];

        if (isempty(h) || !hostname_valid(h, strlen(h)))
                problem(k, "%sbad myhostname '%s': expected a domain name",
                        where(k, "myhostname", w, sizeof w), strempty(h));
        else if (!strchr(h, '.'))
                warning(k, "%smyhostname '%s' is not fully qualified", where(k, "myhostname", w, sizeof w),
                        h);
}

int ctl_check(const Config *c, int argc, char **argv) {
        Check k = { .config = c };
        struct stat st;
        int opt;

        while ((opt = getopt(argc, argv, "")) >= 0) {
                fprintf(stderr, "Usage: mtactl [-c DIR] check\n");
                return 2;
        }
        if (optind < argc) {
                fprintf(stderr, "Usage: mtactl [-c DIR] check\n");
                return 2;
        }

        if (stat(config_path(c), &st) < 0)
                warning(&k, "%s: %m; checking the defaults", config_path(c));
        check_unknown(&k);
        check_types(&k);
        check_ignored(&k);
        check_hostname(&k);
        check_mynetworks(&k);
        check_relayhost(&k);
        check_directories(&k);
        check_maps(&k);
        check_tls(&k);
        return k.errors > 0 ? 1 : 0;
}
