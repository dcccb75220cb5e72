/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sysexits.h>

#include <systemd/sd-daemon.h>

#include "common/config.h"
#include "common/log.h"
#include "common/macro.h"
#include "services/local/deliver.h"
#include "services/local/server.h"

static const char *arg_config_dir = NULL;

static int parse_argv(int argc, char *argv[]) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:hV", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        arg_config_dir = optarg;
                        break;
                case 'h':
                        printf("Usage: %s [-c DIR]\n"
                               "Local delivery agent: serves delivery requests on one connected socket\n"
                               "passed as fd 3 (LISTEN_FDS=1). See mta-local(8).\n",
                               program_invocation_short_name);
                        return 0;
                case 'V':
                        printf("mta-local %s\n", MTA_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("Unexpected argument: %s", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int run(int argc, char *argv[]) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *error = NULL;
        LocalSettings settings = {};
        uid_t mail_owner = (uid_t) -1;
        struct passwd *pw;
        int r, fd;

        log_setup("mta-local", LOG_TARGET_AUTO);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        const char *dir = config_dir_default(arg_config_dir);
        r = config_load(dir, &config, &error);
        if (r == -ENOENT)
                r = config_new_defaults(dir, &config);
        if (r < 0) {
                log_error_errno(r, "Failed to load configuration: %s", error ? error : strerror(-r));
                return EX_CONFIG;
        }
        r = local_settings_load(config, &settings);
        if (r < 0)
                return EX_CONFIG;
        pw = getpwnam(strempty(config_get(config, "mail_owner")));
        if (pw)
                mail_owner = pw->pw_uid;

        r = sd_listen_fds(1);
        if (r != 1) {
                log_error("Expected exactly one socket from the service manager (LISTEN_FDS), got %d.", r);
                local_settings_done(&settings);
                return 2;
        }
        fd = SD_LISTEN_FDS_START;
        if (sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 0) <= 0) {
                log_error("fd %d is not a connected AF_UNIX SOCK_SEQPACKET socket.", fd);
                local_settings_done(&settings);
                return 2;
        }
        /* Commands we run must not inherit the request socket. */
        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (local_server_check_peer(fd, mail_owner) < 0) {
                log_error("Refusing requests from a peer that is neither root nor mail_owner.");
                local_settings_done(&settings);
                return EX_NOPERM;
        }

        r = local_server_run(fd, &settings);
        local_settings_done(&settings);
        return r < 0 ? EX_IOERR : 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv);
}
