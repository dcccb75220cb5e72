/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#include "common/config.h"
#include "common/log.h"
#include "common/privs.h"
#include "services/smtpd/committer.h"
#include "services/smtpd/server.h"
#include "services/smtpd/smtp-settings.h"

static const char *arg_config_dir = NULL;
static uint64_t arg_idle_sec = 60;
static uint64_t arg_shutdown_sec = 30;
static uint64_t arg_shutdown_grace_msec = 2000;
static unsigned arg_max_sessions = 2000;
static CommitMode arg_commit_mode = COMMIT_AUTO;

static void help(void) {
        printf("Usage: mta-smtpd [-c DIR] [OPTIONS]\n\n"
               "SMTP receiver, started by mta.socket (or systemd-socket-activate).\n\n"
               "  -c DIR                  configuration directory (default %s)\n"
               "  --idle-timeout=SEC      exit after SEC seconds without sessions (0: never; default 60)\n"
               "  --shutdown-timeout=SEC  on SIGTERM, wait at most SEC for sessions (default 30)\n"
               "  --shutdown-grace-ms=MS  on SIGTERM, serve sessions as usual this long (default 2000)\n"
               "  --max-sessions=N        concurrent sessions (default 2000)\n"
               "  --commit=MODE           auto (default), rename-syncfs, group, syncfs, or single (per-message\n"
               "                          syncs, for measurements)\n"
               "  --no-group-commit       same as --commit=single\n"
               "  -h, --help              show this help\n"
               "  --version               show the version\n",
               config_dir_default(NULL));
}

static int parse_uint(const char *s, uint64_t *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_IDLE = 0x100, ARG_SHUTDOWN, ARG_GRACE, ARG_MAX, ARG_NO_GROUP, ARG_COMMIT, ARG_VERSION };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "idle-timeout", required_argument, NULL, ARG_IDLE },
                { "shutdown-timeout", required_argument, NULL, ARG_SHUTDOWN },
                { "shutdown-grace-ms", required_argument, NULL, ARG_GRACE },
                { "max-sessions", required_argument, NULL, ARG_MAX },
                { "no-group-commit", no_argument, NULL, ARG_NO_GROUP },
                { "commit", required_argument, NULL, ARG_COMMIT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        uint64_t v;
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        arg_config_dir = optarg;
                        break;
                case ARG_IDLE:
                case ARG_SHUTDOWN:
                case ARG_GRACE:
                case ARG_MAX:
                        if (parse_uint(optarg, &v) < 0 || (c == ARG_MAX && (v == 0 || v > 1000000))) {
                                fprintf(stderr, "mta-smtpd: bad value \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        if (c == ARG_IDLE)
                                arg_idle_sec = v;
                        else if (c == ARG_SHUTDOWN)
                                arg_shutdown_sec = v;
                        else if (c == ARG_GRACE)
                                arg_shutdown_grace_msec = v;
                        else
                                arg_max_sessions = (unsigned) v;
                        break;
                case ARG_NO_GROUP:
                        arg_commit_mode = COMMIT_SINGLE;
                        break;
                case ARG_COMMIT: {
                        int m = commit_mode_from_string(optarg);
                        if (m < 0) {
                                fprintf(stderr, "mta-smtpd: unknown commit mode \"%s\"\n", optarg);
                                return -EINVAL;
                        }
                        arg_commit_mode = (CommitMode) m;
                        break;
                }
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("mta-smtpd %s\n", MTA_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "mta-smtpd: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(smtp_settings_unrefp) SmtpSettings *settings = NULL;
        _cleanup_(server_freep) Server *server = NULL;
        _cleanup_free_ char *err = NULL;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        log_setup("mta-smtpd", LOG_TARGET_AUTO);
        const char *dir = config_dir_default(arg_config_dir);

        /* Read everything that may need privileges (the TLS key) before dropping them. */
        r = smtp_settings_load(dir, NULL, &settings, &err);
        if (r < 0) {
                log_error_errno(r, "Cannot load configuration from %s: %s", dir, err ? err : "%m");
                return 2;
        }
        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Cannot create event loop: %m"), 1;
        ServerOptions options = {
                .config_dir = dir,
                .idle_usec = arg_idle_sec * 1000000ULL,
                .shutdown_usec = arg_shutdown_sec * 1000000ULL,
                .shutdown_grace_usec = arg_shutdown_grace_msec * 1000ULL,
                .max_sessions = arg_max_sessions,
                .commit_mode = arg_commit_mode,
        };
        r = server_new(event, settings, &options, &server);
        if (r < 0)
                return log_oom(), 1;
        r = server_take_listen_fds(server);
        if (r < 0)
                return 1;
        r = privs_drop_if_root(settings->mail_owner);
        if (r < 0)
                return log_error_errno(r, "Cannot drop privileges to %s: %m", settings->mail_owner), 1;
        return server_run(server) < 0 ? 1 : 0;
}
