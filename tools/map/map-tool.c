/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/map.h"
#include "common/strv.h"
#include "tools/map/map-tool.h"

enum {
        EXIT_FOUND = 0,
        EXIT_NOT_FOUND = 1,
        EXIT_ERROR = 2,
};

static void help(const char *program, MapSyntax syntax) {
        if (syntax == MAP_SYNTAX_ALIASES)
                printf("Usage: %s [-c DIR] [-q KEY | -s] [[TYPE:]FILE...]\n"
                       "Compiles aliases(5) files into TYPE:FILE.db (default: every map in alias_database).\n",
                       program);
        else
                printf("Usage: %s [-c DIR] [-q KEY | -s] [TYPE:]FILE...\n"
                       "Compiles \"key value\" files into FILE.db.\n", program);
        printf("\n"
               "  -c DIR   configuration directory (default $MTA_CONFIG_DIR or %s)\n"
               "  -q KEY   print the value of KEY; exit 1 when no map has it\n"
               "  -s       print every entry of the compiled maps\n"
               "  -h       this help\n", MTA_DEFAULT_CONFIG_DIR);
}

static void print_warning(const char *message, void *userdata) {
        log_warning("warning: %s", message);
}

static int print_entry(const char *key, const char *value, void *userdata) {
        MapSyntax syntax = *(MapSyntax *) userdata;
        printf(syntax == MAP_SYNTAX_ALIASES ? "%s: %s\n" : "%s %s\n", key, value);
        return 0;
}

/* The maps named on the command line, or for mta-alias the configured ones. */
static int default_maps(const char *dir, const char *param, char ***ret) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = config_load(dir, &c, &error);
        if (r == -ENOENT)
                r = config_new_defaults(dir, &c);
        if (r < 0) {
                if (error)
                        log_error("%s", error);
                else
                        log_error_errno(r, "Cannot read configuration in %s: %m", dir);
                return r;
        }
        r = strv_split_list(strempty(config_get(c, param)), ret);
        if (r < 0)
                return log_oom();
        if (!**ret) {
                log_error("%s is empty: name a file", param);
                return -EINVAL;
        }
        return 0;
}

int map_tool_run(const char *program, MapSyntax syntax, int argc, char **argv) {
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_strv_free_ char **maps = NULL;
        const char *arg_dir = NULL, *arg_query = NULL;
        bool arg_show = false;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "c:q:sh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        arg_dir = optarg;
                        break;
                case 'q':
                        arg_query = optarg;
                        break;
                case 's':
                        arg_show = true;
                        break;
                case 'h':
                        help(program, syntax);
                        return 0;
                default:
                        return EXIT_ERROR;
                }
        if (arg_query && arg_show) {
                log_error("-q and -s exclude each other.");
                return EXIT_ERROR;
        }

        if (optind < argc) {
                for (int i = optind; i < argc; i++)
                        if (strv_extend(&maps, argv[i]) < 0)
                                return log_oom(), EXIT_ERROR;
        } else if (syntax == MAP_SYNTAX_ALIASES) {
                /* Like postalias and newaliases: queries search alias_maps, compiling builds
                 * alias_database. */
                r = default_maps(config_dir_default(arg_dir), arg_query || arg_show ? "alias_maps" : "alias_database",
                                 &maps);
                if (r < 0)
                        return EXIT_ERROR;
        } else {
                log_error("No map named. Usage: %s [-c DIR] [-q KEY | -s] [TYPE:]FILE...", program);
                return EXIT_ERROR;
        }

        for (char **m = maps; *m; m++) {
                _cleanup_(map_freep) Map *map = NULL;
                _cleanup_free_ char *error = NULL, *value = NULL;

                if (!arg_query && !arg_show) {
                        r = map_build_full(*m, syntax, print_warning, NULL, &error);
                        if (r < 0) {
                                log_error("%s", error ? error : strerror(-r));
                                return EXIT_ERROR;
                        }
                        continue;
                }

                r = map_open(*m, &map);
                if (r < 0) {
                        log_error_errno(r, "Cannot open map %s: %m", *m);
                        return EXIT_ERROR;
                }
                if (arg_show) {
                        r = map_iterate(map, print_entry, &syntax);
                        if (r < 0) {
                                log_error_errno(r, "Cannot read map %s: %m", *m);
                                return EXIT_ERROR;
                        }
                        continue;
                }
                r = map_lookup(map, arg_query, &value);
                if (r < 0) {
                        log_error_errno(r, "Cannot look up \"%s\" in %s: %m", arg_query, *m);
                        return EXIT_ERROR;
                }
                if (r > 0) {
                        printf("%s\n", value);
                        return fflush(stdout) == 0 ? EXIT_FOUND : EXIT_ERROR;
                }
        }
        if (fflush(stdout) != 0)
                return EXIT_ERROR;
        return arg_query ? EXIT_NOT_FOUND : 0;
}
