/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/privs.h"
#include "common/queue.h"
#include "common/strv.h"
#include "services/queue/local-agent.h"
#include "services/queue/runner.h"
#include "services/queue/workers.h"

static const char *arg_config_dir = NULL;
static bool arg_flush = false;
static char **arg_ids = NULL;

static void help(void) {
        printf("Usage: mta-queue [-c DIR] [-f] [-i ID]...\n\n"
               "Delivers the queued mail that is due, then exits.\n\n"
               "  -c DIR   configuration directory (default: $MTA_CONFIG_DIR or %s)\n"
               "  -f       flush: treat all deferred mail as due\n"
               "  -i ID    deliver only this message (may be repeated)\n"
               "  -h       show this help\n",
               config_dir_default(NULL));
}

static int parse_argv(int argc, char *argv[]) {
        int c;
        while ((c = getopt(argc, argv, "c:fi:h")) >= 0)
                switch (c) {
                case 'c':
                        arg_config_dir = optarg;
                        break;
                case 'f':
                        arg_flush = true;
                        break;
                case 'i':
                        if (!queue_id_valid(optarg)) {
                                fprintf(stderr, "mta-queue: invalid queue id: %s\n", optarg);
                                return -EINVAL;
                        }
                        if (strv_extend(&arg_ids, optarg) < 0)
                                return -ENOMEM;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "mta-queue: unexpected argument: %s\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

/* One worker: its own local delivery agent, then mail_owner's rights, then the run. */
static int run_worker(const Config *config, const char *dir) {
        _cleanup_(runner_freep) Runner *runner = NULL;
        _cleanup_free_ char *error = NULL;
        LocalAgent *agent = NULL;
        int r;

        r = local_agent_new(dir, local_agent_timeout(config), &agent);
        if (r < 0)
                return log_oom(), EXIT_FAILURE;
        /* Root outside systemd: start the privileged delivery agent while we still can, then drop. */
        if (geteuid() == 0) {
                r = local_agent_spawn(agent);
                if (r < 0)
                        log_warning_errno(r, "Cannot start mta-local, local mail will be deferred: %m");
        }
        r = privs_drop_if_root(config_get(config, "mail_owner"));
        if (r < 0) {
                local_agent_free(agent);
                log_error_errno(r, "Cannot drop privileges to mail_owner %s: %m", config_get(config, "mail_owner"));
                return EXIT_FAILURE;
        }
        RunnerOptions o = { .flush = arg_flush, .ids = arg_ids };
        r = runner_new(config, agent, &o, &runner, &error);
        if (r < 0) {
                log_error_errno(r, "%s: %s", config_path(config), error ? error : "cannot set up the queue run");
                return EXIT_FAILURE;
        }
        return runner_run(runner) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *error = NULL;
        Workers workers;
        int r;

        log_setup("mta-queue", LOG_TARGET_AUTO);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r == 0 ? EXIT_SUCCESS : 2;

        umask(0077);
        (void) signal(SIGPIPE, SIG_IGN);

        const char *dir = config_dir_default(arg_config_dir);
        r = config_load(dir, &config, &error);
        if (r == -ENOENT)
                r = config_new_defaults(dir, &config);
        if (r < 0) {
                log_error_errno(r, "Cannot load configuration: %s", error ? error : "%m");
                return 2;
        }
        /* Check the settings once, before any worker starts. */
        {
                _cleanup_(runner_freep) Runner *probe = NULL;
                RunnerOptions o = { .flush = arg_flush, .ids = arg_ids };
                r = runner_new(config, NULL, &o, &probe, &error);
                if (r < 0) {
                        log_error_errno(r, "%s: %s", config_path(config), error ? error : "cannot set up the queue run");
                        strv_free(arg_ids);
                        return r == -ENOMEM ? EXIT_FAILURE : 2;
                }
        }

        /* With a backlog, several workers share the scan. */
        unsigned n = workers_count(config_get(config, "queue_directory"), arg_flush, arg_ids != NULL);
        int64_t limit;
        /* Each worker may open one connection per destination. */
        if (config_get_int(config, "smtp_destination_concurrency_limit", &limit) >= 0 && limit > 0 &&
            (uint64_t) limit < n)
                n = (unsigned) limit;
        bool parent = workers_start(&workers, n) != 0;

        int ret = run_worker(config, dir);
        if (parent) {
                int w = workers_wait(&workers);
                if (w > ret)
                        ret = w;
        }
        strv_free(arg_ids);
        return ret;
}
