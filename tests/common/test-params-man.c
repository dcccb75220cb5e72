/* SPDX-License-Identifier: MIT */
/*
 * mta.conf(5) must list every parameter of params_table with the same default and doc line, and
 * nothing else. Run with the path of man/mta.conf.5.scd; with --generate it prints the PARAMETERS
 * entries instead (paste them into the page after changing the table).
 */
#undef NDEBUG
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/params.h"

/* scdoc gives '*', '_' and '\' meaning; escape them all. */
static char *escape(const char *s) {
        char *out = malloc(strlen(s) * 2 + 1), *o = out;
        assert(out);
        for (; *s; s++) {
                if (*s == '*' || *s == '_' || *s == '\\')
                        *o++ = '\\';
                *o++ = *s;
        }
        *o = 0;
        return out;
}

static bool starts_with(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The default as the page states it: machine and build dependent defaults are described, not given. */
static char *default_text(const ParamInfo *p) {
        char *s;
        if (!p->default_value)
                s = strdup("computed, see DESCRIPTION");
        else if (starts_with(p->default_value, MTA_SBINDIR) || starts_with(p->default_value, MTA_BINDIR) ||
                 starts_with(p->default_value, MTA_LIBEXECDIR) ||
                 streq(p->default_value, MTA_DEFAULT_CONFIG_DIR))
                s = strdup("set at build time");
        else if (!*p->default_value)
                s = strdup("empty");
        else {
                char *e = escape(p->default_value);
                assert(asprintf(&s, "%s", e) >= 0);
                free(e);
        }
        assert(s);
        return s;
}

static char *entry(const ParamInfo *p) {
        char *name = escape(p->name), *def = default_text(p), *doc = escape(p->doc), *s;
        assert(asprintf(&s, "*%s* (default: %s)\n\t%s\n", name, def, doc) >= 0);
        free(name);
        free(def);
        free(doc);
        return s;
}

static int cmp_info(const void *a, const void *b) {
        return strcmp((*(const ParamInfo * const *) a)->name, (*(const ParamInfo * const *) b)->name);
}

int main(int argc, char **argv) {
        const ParamInfo **sorted = calloc(params_table_size, sizeof(ParamInfo *));
        assert(sorted);
        for (size_t i = 0; i < params_table_size; i++)
                sorted[i] = &params_table[i];
        qsort(sorted, params_table_size, sizeof(ParamInfo *), cmp_info);

        assert(argc == 2);
        if (streq(argv[1], "--generate")) {
                for (size_t i = 0; i < params_table_size; i++) {
                        char *e = entry(sorted[i]);
                        printf("%s\n", e);
                        free(e);
                }
                free(sorted);
                return 0;
        }

        FILE *f = fopen(argv[1], "re");
        assert(f);
        char *page = NULL;
        size_t size = 0;
        FILE *m = open_memstream(&page, &size);
        assert(m);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                assert(fwrite(buf, 1, n, m) == n);
        fclose(f);
        fclose(m);

        int failures = 0;
        /* Every parameter of the table, in alphabetical order, with its default and doc line. */
        const char *pos = page;
        for (size_t i = 0; i < params_table_size; i++) {
                char *e = entry(sorted[i]);
                const char *hit = strstr(pos, e);
                if (!hit) {
                        fprintf(stderr, "mta.conf(5) lacks this entry (or has it out of order):\n%s", e);
                        failures++;
                } else
                        pos = hit + strlen(e);
                free(e);
        }
        /* ... and no entry for a parameter the table does not have. */
        size_t entries = 0;
        for (const char *p = page; (p = strstr(p, "\n*")); p++) {
                const char *close = strstr(p + 2, "* (default: ");
                const char *eol = strchr(p + 1, '\n');
                if (close && (!eol || close < eol))
                        entries++;
        }
        if (entries != params_table_size) {
                fprintf(stderr, "mta.conf(5) has %zu parameter entries, params_table has %zu\n", entries,
                        params_table_size);
                failures++;
        }
        free(page);
        free(sorted);
        return failures ? 1 : 0;
}
