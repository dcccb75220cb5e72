/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/mailq.h"
#include "common/privs.h"
#include "common/queue.h"
#include "common/sibling.h"
#include "common/strv.h"
#include "tools/sendmail/addrlist.h"
#include "tools/sendmail/deadletter.h"
#include "tools/sendmail/enqueue.h"
#include "tools/sendmail/local-smtp.h"
#include "tools/sendmail/message.h"
#include "tools/sendmail/sendmail.h"
#include "tools/sendmail/submit.h"

/* Everything a submission needs to know about the system and the submitting user. */
typedef struct Context {
        Config *config;
        const char *config_dir;
        const char *myhostname;
        const char *myorigin;       /* "" when append_at_myorigin = no */
        const char *mail_owner;
        uid_t uid;
        char *login;
        char *gecos_name;
        bool direct;                /* root or mail_owner: write the queue ourselves */
} Context;

static void context_done(Context *c) {
        config_free(c->config);
        free(c->login);
        free(c->gecos_name);
}

/* The GECOS full name: up to the first comma, '&' standing for the capitalized login (BSD). */
static char *gecos_full_name(const char *gecos, const char *login) {
        size_t n = strcspn(gecos, ","), k = 0, extra = 0;
        char *s;

        for (size_t i = 0; i < n; i++)
                if (gecos[i] == '&')
                        extra += strlen(login);
        s = malloc(n + extra + 1);
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (gecos[i] != '&') {
                        s[k++] = gecos[i];
                        continue;
                }
                for (size_t j = 0; login[j]; j++)
                        s[k++] = j == 0 ? (char) toupper((unsigned char) login[0]) : login[j];
        }
        s[k] = '\0';
        return s;
}

static int context_load(const SendmailArgs *args, Context *ret) {
        _cleanup_free_ char *error = NULL;
        Context c = { .uid = getuid() };
        const char *dir = config_dir_default(args->config_dir);
        struct passwd *pw, *owner;
        bool append = true;
        int r;

        r = config_load(dir, &c.config, &error);
        if (r == -ENOENT)
                r = config_new_defaults(dir, &c.config);
        if (r < 0) {
                if (error)
                        log_error("%s", error);
                else
                        log_error_errno(r, "Cannot read the configuration in %s: %m", dir);
                return EX_CONFIG;
        }
        c.config_dir = config_dir(c.config);
        c.myhostname = config_get(c.config, "myhostname");
        c.myorigin = config_get(c.config, "myorigin");
        c.mail_owner = config_get(c.config, "mail_owner");
        if (config_get_bool(c.config, "append_at_myorigin", &append) >= 0 && !append)
                c.myorigin = "";

        errno = 0;
        pw = getpwuid(c.uid);
        if (!pw) {
                log_error("There is no account for user id %u.", (unsigned) c.uid);
                context_done(&c);
                return EX_NOUSER;
        }
        c.login = strdup(pw->pw_name);
        c.gecos_name = gecos_full_name(strempty(pw->pw_gecos), pw->pw_name);
        if (!c.login || !c.gecos_name) {
                context_done(&c);
                return EX_OSERR;
        }
        owner = getpwnam(strempty(c.mail_owner));
        c.direct = c.uid == 0 || (owner && owner->pw_uid == c.uid);
        *ret = c;
        return EX_OK;
}

/* "-f <addr>" or "-f addr"; "<>" or "" is the null sender. Returns 0 or an exit code. */
static int sender_address(const SendmailArgs *args, const Context *c, char **ret) {
        _cleanup_free_ char *a = NULL;
        char *s;

        if (!args->sender)
                return addrlist_qualify(c->login, c->myorigin, ret) < 0 ? EX_OSERR : EX_OK;

        a = strdup(args->sender);
        if (!a)
                return EX_OSERR;
        s = strstrip(a);
        if (s[0] == '<' && s[strlen(s) - 1] == '>') {
                s[strlen(s) - 1] = '\0';
                s = strstrip(s + 1);
        }
        if (!*s) {
                *ret = strdup("");
                return *ret ? EX_OK : EX_OSERR;
        }
        if (!addrlist_address_valid(s)) {
                log_error("Bad sender address: %s", args->sender);
                return EX_USAGE;
        }
        return addrlist_qualify(s, c->myorigin, ret) < 0 ? EX_OSERR : EX_OK;
}

/* Qualifies, checks and de-duplicates the addresses in found into *list. */
static int add_recipients(char **found, const Context *c, const char *where, int bad_status,
                          char ***list) {
        for (char **a = found; a && *a; a++) {
                _cleanup_free_ char *q = NULL;

                if (!addrlist_address_valid(*a)) {
                        log_error("Bad recipient address %s: %s", where, *a);
                        return bad_status;
                }
                if (addrlist_qualify(*a, c->myorigin, &q) < 0)
                        return EX_OSERR;
                if (strv_contains_case(*list, q))
                        continue;
                if (strv_push(list, TAKE_PTR(q)) < 0)
                        return EX_OSERR;
        }
        return EX_OK;
}

static int enqueue(const Context *c, const SendmailArgs *args, const char *sender, char **recipients,
                   const Message *m) {
        size_t len;
        const char *content = message_content(m, &len);
        bool eight_bit = args->body_type ? streq(args->body_type, "8BITMIME") : message_is_8bit(m);

        return enqueue_message(&(EnqueueRequest) {
                .queue_dir = strempty(config_get(c->config, "queue_directory")),
                .mail_owner = c->mail_owner,
                .info = {
                        .sender = sender,
                        .protocol = "LOCAL",
                        .user = c->login,
                        .esmtp = eight_bit ? "BODY=8BITMIME" : NULL,
                },
                .recipients = recipients,
                .content = content,
                .content_len = len,
                .verbose = args->verbose > 0,
                .received_by = c->myhostname,
                .uid = c->uid,
        }, NULL);
}

static void save_dead_letter(const char *sender, const Message *m, size_t n_accepted) {
        _cleanup_free_ char *path = NULL;
        size_t len;
        const char *content = message_content(m, &len);
        int r;

        if (!content)
                return;
        r = deadletter_path(&path);
        if (r >= 0)
                r = deadletter_save(path, sender, content, len);
        if (r < 0)
                log_error_errno(r, "The message was not accepted%s, and could not be saved in %s: %m",
                                n_accepted > 0 ? " for every recipient" : "", path ? path : "~/dead.letter");
        else
                log_error("The message was not accepted%s; a copy is in %s.",
                          n_accepted > 0 ? " for every recipient" : "", path);
}

static int deliver(const SendmailArgs *args, const Context *c) {
        _cleanup_(message_freep) Message *m = NULL;
        _cleanup_strv_free_ char **found = NULL, **recipients = NULL;
        _cleanup_free_ char *sender = NULL, *from = NULL, *msgid = NULL;
        const char *full_name;
        char id[QUEUE_ID_MAX];
        uint64_t max_size = 0;
        size_t n_accepted = 0;
        int status, r;

        status = sender_address(args, c, &sender);
        if (status != EX_OK)
                return status;

        (void) config_get_size(c->config, "message_size_limit", &max_size);
        r = message_read(stdin, args->ignore_dots, max_size, &m);
        if (r == -EFBIG) {
                log_error("The message is larger than message_size_limit (%llu bytes); not sent.",
                          (unsigned long long) max_size);
                return EX_DATAERR;
        }
        if (r < 0) {
                log_error_errno(r, "Cannot read the message: %m");
                return r == -ENOMEM ? EX_OSERR : EX_IOERR;
        }

        /* Recipients come from the arguments and, with -t, from the headers (before Bcc: goes). */
        for (char **a = args->recipients; a && *a; a++)
                if (addrlist_parse(*a, &found) < 0)
                        return EX_OSERR;
        status = add_recipients(found, c, "on the command line", EX_USAGE, &recipients);
        found = strv_free(found);
        if (status == EX_OK && args->extract) {
                if (message_extract_recipients(m, &found) < 0)
                        return EX_OSERR;
                status = add_recipients(found, c, "in the message header", EX_DATAERR, &recipients);
        }

        full_name = args->full_name ? args->full_name : getenv("NAME");
        if (!full_name)
                full_name = c->gecos_name;
        if (addrlist_qualify(c->login, c->myorigin, &from) < 0 || queue_id_new(id) < 0 ||
            asprintf(&msgid, "<%s@%s>", id, c->myhostname) < 0)
                return EX_OSERR;
        r = message_finish(m, &(MessageFinish) {
                .from_address = isempty(sender) ? from : sender,
                .full_name = full_name,
                .message_id = msgid,
                .date = time(NULL),
        });
        if (r < 0)
                return EX_OSERR;

        if (status == EX_OK && strv_length(recipients) == 0) {
                log_error(args->extract ? "No recipient addresses found in message header."
                                        : "No recipient addresses found on the command line.");
                status = EX_USAGE;
        }

        if (status == EX_OK && c->direct) {
                status = enqueue(c, args, sender, recipients, m);
                n_accepted = status == EX_OK ? strv_length(recipients) : 0;
        } else if (status == EX_OK) {
                size_t len;
                const char *content = message_content(m, &len);
                status = submit_message(&(SubmitRequest) {
                        .socket_path = submit_socket_path(),
                        .helo_name = "localhost",
                        .sender = sender,
                        .recipients = recipients,
                        .content = content,
                        .content_len = len,
                        .body_type = args->body_type ? args->body_type
                                                     : message_is_8bit(m) ? "8BITMIME" : NULL,
                        .verbose = args->verbose > 0,
                }, &n_accepted);
        }

        if (status != EX_OK)
                save_dead_letter(sender, m, n_accepted);
        return status;
}

/* Where the build tree keeps the programs we run, relative to tools/sendmail/. */
static const char *build_tree_path(const char *name) {
        if (streq(name, "mta-alias"))
                return "../map/mta-alias";
        if (streq(name, "mtactl"))
                return "../ctl/mtactl";
        return NULL;
}

/* Runs a sibling program (see sibling_find()). With wait false it replaces this process; returns an
 * exit code only when it could not. */
static int run_tool(const char *name, char **argv, bool wait) {
        char path[PATH_MAX + 64];
        pid_t pid = 0;
        int status;

        if (wait) {
                fflush(NULL);
                pid = fork();
                if (pid < 0)
                        return EX_OSERR;
        }
        if (pid == 0) {
                const char *const rel[] = { build_tree_path(name), NULL };
                if (sibling_find(name, rel, path, sizeof path) >= 0)
                        execvp(path, argv);
                log_error_errno(negative_errno(), "Cannot run %s: %m", name);
                if (wait)
                        _exit(EX_UNAVAILABLE);
                return EX_UNAVAILABLE;
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return EX_OSERR;
        return WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE;
}

static int newaliases(const SendmailArgs *args, const Context *c) {
        _cleanup_strv_free_ char **maps = NULL;
        int status = EX_OK;

        if (args->alias_file) {
                if (strv_extend(&maps, args->alias_file) < 0)
                        return EX_OSERR;
        } else if (config_get_list(c->config, "alias_database", &maps) < 0) {
                log_error("Cannot parse alias_database in %s.", config_path(c->config));
                return EX_CONFIG;
        }
        for (char **m = maps; m && *m; m++) {
                char *argv[] = { (char *) "mta-alias", (char *) "-c", (char *) c->config_dir, *m, NULL };
                int r = run_tool("mta-alias", argv, true);
                if (r != EX_OK && status == EX_OK)
                        status = r;
        }
        return status;
}

static int mailq(const Context *c) {
        const char *queue_dir = strempty(config_get(c->config, "queue_directory"));
        int r;

        /* The queue holds client data and belongs to mail_owner: read it as mail_owner. */
        r = privs_drop_if_root(c->mail_owner);
        if (r < 0) {
                log_error_errno(r, "Cannot switch to mail_owner %s: %m", c->mail_owner);
                return r == -ESRCH ? EX_CONFIG : EX_OSERR;
        }
        r = mailq_print(stdout, queue_dir);
        if (fflush(stdout) != 0 && r >= 0)
                r = -EIO;
        if (r == -EACCES || r == -EPERM) {
                log_error_errno(r, "Cannot read the queue %s: %m (only root and %s may list it)",
                                queue_dir, c->mail_owner);
                return EX_NOPERM;
        }
        if (r < 0) {
                log_error_errno(r, "Cannot list the queue %s: %m", queue_dir);
                return EX_IOERR;
        }
        return EX_OK;
}

static int smtp_session(const SendmailArgs *args, const Context *c) {
        const char *path = submit_socket_path();
        _cleanup_close_ int fd = -EBADF;

        /* Root and mail_owner get a session even when the service is down (early boot,
         * containers): without a socket to relay to, they speak SMTP themselves. */
        if (c->direct) {
                fd = submit_connect(path);
                if (fd < 0)
                        return local_smtp_run(&(LocalSmtp) {
                                .config = c->config,
                                .login = c->login,
                                .myhostname = c->myhostname,
                                .myorigin = c->myorigin,
                                .mail_owner = c->mail_owner,
                                .uid = c->uid,
                        }, STDIN_FILENO, STDOUT_FILENO);
                fd = safe_close(fd);
        }
        return submit_relay(path, STDIN_FILENO, STDOUT_FILENO);
}

int sendmail_run(const SendmailArgs *args) {
        _cleanup_(context_done) Context c = {};
        int status;

        if (args->mode == SENDMAIL_DELIVER && !args->extract && strv_length(args->recipients) == 0) {
                log_error("Recipient addresses must be specified on the command line or via the -t option.");
                return EX_USAGE;
        }

        status = context_load(args, &c);
        if (status != EX_OK)
                return status;

        switch (args->mode) {
        case SENDMAIL_DELIVER:
                return deliver(args, &c);
        case SENDMAIL_MAILQ:
                return mailq(&c);
        case SENDMAIL_FLUSH: {
                char *argv[] = { (char *) "mtactl", (char *) "-c", (char *) c.config_dir,
                                 (char *) "flush", NULL };
                return run_tool("mtactl", argv, false);
        }
        case SENDMAIL_NEWALIASES:
                return newaliases(args, &c);
        case SENDMAIL_SMTP:
                return smtp_session(args, &c);
        }
        return EX_SOFTWARE;
}
