/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/params.h"
#include "common/strv.h"
#include "tools/ctl/ctl.h"

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

static void print_param(const char *name, const char *value, bool value_only) {
        if (value_only)
                printf("%s\n", value);
        else if (*value)
                printf("%s = %s\n", name, value);
        else
                printf("%s =\n", name);      /* as postconf prints an empty value */
}

/* The value to show: from main.cf or the defaults (-d), raw or with $name expanded (-x). */
static int show(const Config *view, const char *name, bool expand, bool value_only) {
        _cleanup_free_ char *expanded = NULL;
        const char *v = config_get_raw(view, name);

        if (!v)
                return -ENOENT;
        if (expand) {
                int r = config_expand(view, v, &expanded);
                if (r < 0) {
                        fprintf(stderr, "mtactl: warning: %s: cannot expand value: %s\n", name,
                                strerror(-r));
                        return r;
                }
                v = expanded;
        }
        print_param(name, v, value_only);
        return 0;
}

int ctl_config(const Config *c, int argc, char **argv) {
        _cleanup_(config_freep) Config *defaults = NULL;
        _cleanup_strv_free_ char **names = NULL;
        bool arg_set_only = false, arg_defaults = false, arg_expand = false, arg_value_only = false;
        const Config *view = c;
        int opt, r, ret = 0;

        while ((opt = getopt(argc, argv, "ndxh")) >= 0)
                switch (opt) {
                case 'n':
                        arg_set_only = true;
                        break;
                case 'd':
                        arg_defaults = true;
                        break;
                case 'x':
                        arg_expand = true;
                        break;
                case 'h':
                        arg_value_only = true;
                        break;
                default:
                        fprintf(stderr, "Usage: mtactl [-c DIR] config [-n] [-d] [-x] [-h] [NAME...]\n");
                        return 2;
                }

        if (arg_defaults) {
                r = config_new_defaults(config_dir(c), &defaults);
                if (r < 0) {
                        fprintf(stderr, "mtactl: %s\n", strerror(-r));
                        return 2;
                }
                view = defaults;
        }

        if (optind < argc) {
                /* Named parameters, in the order given, as postconf prints them. */
                for (int i = optind; i < argc; i++) {
                        const char *name = argv[i];
                        bool known = params_find(name) || (!arg_defaults && config_is_set(c, name));
                        if (!known) {
                                fprintf(stderr, "mtactl: warning: %s: unknown parameter\n", name);
                                ret = 1;
                                continue;
                        }
                        if (arg_set_only && !config_is_set(c, name))
                                continue;
                        if (show(view, name, arg_expand, arg_value_only) < 0)
                                ret = 1;
                }
                return ret;
        }

        if (arg_set_only) {
                r = config_set_names(c, &names);
                if (r < 0) {
                        fprintf(stderr, "mtactl: %s\n", strerror(-r));
                        return 2;
                }
                if (arg_defaults) {
                        /* -n -d: the defaults of what main.cf sets; names without a default drop out. */
                        char **known = NULL;
                        for (char **n = names; *n; n++)
                                if (params_find(*n) && strv_extend(&known, *n) < 0) {
                                        strv_free(known);
                                        fprintf(stderr, "mtactl: %s\n", strerror(ENOMEM));
                                        return 2;
                                }
                        strv_free(names);
                        names = known ? known : calloc(1, sizeof(char *));
                        if (!names)
                                return 2;
                }
        } else {
                for (size_t i = 0; i < params_table_size; i++)
                        if (strv_extend(&names, params_table[i].name) < 0) {
                                fprintf(stderr, "mtactl: %s\n", strerror(ENOMEM));
                                return 2;
                        }
        }
        qsort(names, strv_length(names), sizeof(char *), cmp_str);
        for (char **n = names; *n; n++)
                if (show(view, *n, arg_expand, arg_value_only) < 0)
                        ret = 1;
        if (fflush(stdout) != 0) {
                fprintf(stderr, "mtactl: write error: %m\n");
                return 2;
        }
        return ret;
}
