/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "tools/ctl/ctl.h"

typedef struct Verb {
        const char *name;
        int (*run)(const Config *c, int argc, char **argv);
        int (*run_systemd)(const Config *c, const char *verb, int argc, char **argv);
        const char *help;
} Verb;

static const Verb verbs[] = {
        { "config", ctl_config, NULL, "config [-n] [-d] [-x] [-h] [NAME...]  show parameters (postconf)" },
        { "check",  ctl_check,  NULL, "check                                 check configuration, files" },
        { "queue",  ctl_queue,  NULL, "queue [delete|hold|release ID...|ALL] list or change the queue" },
        { "flush",  ctl_flush,  NULL, "flush                                 deliver queued mail now" },
        { "status", ctl_status, NULL, "status                                unit states and queue counts" },
        { "start",  NULL, ctl_systemd, "start                                 start the mail system" },
        { "stop",   NULL, ctl_systemd, "stop                                  stop the mail system" },
        { "reload", NULL, ctl_systemd, "reload                                reload the configuration" },
        { "abort",  NULL, ctl_systemd, "abort                                 stop at once" },
};

static void help(FILE *f) {
        fprintf(f, "Usage: mtactl [-c DIR] COMMAND [ARGS...]\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                fprintf(f, "  %s\n", verbs[i].help);
        fprintf(f, "\nOptions:\n  -c DIR  configuration directory (default: $MTA_CONFIG_DIR or %s)\n"
                   "  -h      show this help\n", MTA_DEFAULT_CONFIG_DIR);
}

int main(int argc, char **argv) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        const char *arg_dir = NULL;
        const Verb *v = NULL;
        int opt, r;

        log_setup("mtactl", LOG_TARGET_STDERR);
        /* '+': stop at the subcommand, whose options are its own. */
        while ((opt = getopt(argc, argv, "+c:h")) >= 0)
                switch (opt) {
                case 'c':
                        arg_dir = optarg;
                        break;
                case 'h':
                        help(stdout);
                        return 0;
                default:
                        help(stderr);
                        return 2;
                }
        if (optind >= argc) {
                help(stderr);
                return 2;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[optind]))
                        v = &verbs[i];
        if (!v) {
                fprintf(stderr, "mtactl: unknown command '%s'; try mtactl -h\n", argv[optind]);
                return 2;
        }

        const char *dir = config_dir_default(arg_dir);
        r = config_load(dir, &c, &error);
        if (r == -ENOENT)
                r = config_new_defaults(dir, &c);
        if (r < 0) {
                /* For check a broken main.cf is a problem found; for the rest it is bad input. */
                fprintf(stderr, "mtactl: %s%s\n", streq(v->name, "check") ? "error: " : "",
                        error ? error : strerror(-r));
                return streq(v->name, "check") ? 1 : 2;
        }

        argc -= optind;
        argv += optind;
        optind = 0;
        return v->run ? v->run(c, argc, argv) : v->run_systemd(c, v->name, argc, argv);
}
