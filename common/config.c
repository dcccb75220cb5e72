/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/strv.h"

/* main.cf is a few kilobytes; the cap only stops a runaway file (or /dev/zero) from eating memory. */
#define CONFIG_FILE_MAX (64u * 1024u * 1024u)
/* Nesting of $name references before expansion is cut off, as a loop would be. */
#define EXPAND_DEPTH_MAX 100
/* Largest expanded value: stops "a = $b$b, b = $c$c, ..." from doubling its way through memory. */
#define EXPAND_SIZE_MAX (1024u * 1024u)

typedef struct Entry {
        char *name;
        char *value;          /* raw, as written */
        unsigned line;        /* 0 when set by config_set() */
        char *expanded;       /* cache for config_get() and nested expansion */
        char *cut;            /* config_get() result that met a loop: not reused by nested expansion */
} Entry;

struct Config {
        char *dir;
        char *path;
        Entry *entries;       /* file order; one per name, later settings override earlier ones */
        size_t n_entries;
        char **default_cache; /* expanded defaults, indexed like params_table */
        char **default_cut;   /* like Entry.cut, for defaults */
        char *mydomain;       /* default of mydomain, derived from the effective myhostname */
        bool deriving;        /* computing mydomain: stops myhostname = $mydomain from recursing */
};

const char *config_dir_default(const char *arg_dir) {
        const char *e;

        if (!isempty(arg_dir))
                return arg_dir;
        e = getenv("MTA_CONFIG_DIR");
        if (!isempty(e))
                return e;
        return MTA_DEFAULT_CONFIG_DIR;
}

static Config *config_alloc(const char *dir) {
        Config *c = calloc(1, sizeof(Config));
        if (!c)
                return NULL;
        c->dir = strdup(dir);
        c->default_cache = calloc(params_table_size ? params_table_size : 1, sizeof(char *));
        c->default_cut = calloc(params_table_size ? params_table_size : 1, sizeof(char *));
        if (!c->dir || !c->default_cache || !c->default_cut || asprintf(&c->path, "%s/main.cf", dir) < 0) {
                c->path = NULL;
                return config_free(c);
        }
        return c;
}

static void config_flush_cache(Config *c) {
        for (size_t i = 0; i < c->n_entries; i++) {
                c->entries[i].expanded = (free(c->entries[i].expanded), NULL);
                c->entries[i].cut = (free(c->entries[i].cut), NULL);
        }
        for (size_t i = 0; i < params_table_size; i++) {
                c->default_cache[i] = (free(c->default_cache[i]), NULL);
                c->default_cut[i] = (free(c->default_cut[i]), NULL);
        }
        c->mydomain = (free(c->mydomain), NULL);
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_entries; i++) {
                free(c->entries[i].name);
                free(c->entries[i].value);
                free(c->entries[i].expanded);
                free(c->entries[i].cut);
        }
        free(c->entries);
        for (size_t i = 0; i < params_table_size; i++) {
                if (c->default_cache)
                        free(c->default_cache[i]);
                if (c->default_cut)
                        free(c->default_cut[i]);
        }
        free(c->default_cache);
        free(c->default_cut);
        free(c->mydomain);
        free(c->dir);
        free(c->path);
        free(c);
        return NULL;
}

int config_new_defaults(const char *dir, Config **ret) {
        Config *c;

        if (!dir || !ret)
                return -EINVAL;
        c = config_alloc(dir);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

const char *config_dir(const Config *c) {
        return c->dir;
}

const char *config_path(const Config *c) {
        return c->path;
}

static Entry *config_find_entry(const Config *c, const char *name) {
        for (size_t i = 0; i < c->n_entries; i++)
                if (streq(c->entries[i].name, name))
                        return &c->entries[i];
        return NULL;
}

static int config_set_line(Config *c, const char *name, const char *value, unsigned line) {
        Entry *e = config_find_entry(c, name);
        char *v = strdup(value);

        if (!v)
                return -ENOMEM;
        if (e) {
                free(e->value);
                e->value = v;
                e->line = line;
        } else {
                char *n = strdup(name);
                Entry *a = n ? realloc(c->entries, sizeof(Entry) * (c->n_entries + 1)) : NULL;
                if (!a) {
                        free(n);
                        free(v);
                        return -ENOMEM;
                }
                c->entries = a;
                c->entries[c->n_entries++] = (Entry) { .name = n, .value = v, .line = line };
        }
        /* Any value may feed another through $name. */
        config_flush_cache(c);
        return 0;
}

static bool valid_name(const char *name) {
        if (isempty(name))
                return false;
        for (const char *p = name; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == '=' || *p == 0x7f)
                        return false;
        return true;
}

int config_set(Config *c, const char *name, const char *value) {
        if (!c || !valid_name(name) || !value)
                return -EINVAL;
        return config_set_line(c, name, value, 0);
}

static int read_file(const char *path, char **ret, size_t *ret_size, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0, cap = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = negative_errno();
                (void) error_set(ret_error, 0, "%s: %s", path, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                int r = negative_errno();
                (void) error_set(ret_error, 0, "%s: %s", path, strerror(-r));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                (void) error_set(ret_error, 0, "%s: is a directory, not a file", path);
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode)) {
                (void) error_set(ret_error, 0, "%s: not a regular file", path);
                return -EINVAL;
        }
        for (;;) {
                if (n + 1 >= cap) {
                        if (cap >= CONFIG_FILE_MAX) {
                                (void) error_set(ret_error, 0, "%s: file too large", path);
                                return -EFBIG;
                        }
                        size_t ncap = cap ? cap * 2 : 8192;
                        char *b = realloc(buf, ncap + 1);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        cap = ncap;
                }
                ssize_t k = read(fd, buf + n, cap - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = negative_errno();
                        (void) error_set(ret_error, 0, "%s: %s", path, strerror(-r));
                        return r;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (!buf) {
                buf = strdup("");
                if (!buf)
                        return -ENOMEM;
        }
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

static bool is_blank(char ch) {
        /* CR counts as white space, so CRLF files parse like LF files. */
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* One logical line: "name = value" (white space around '=' optional, the value may be empty). */
static int parse_logical(Config *c, char *text, unsigned line, char **ret_error) {
        char *p = text, *name, *value;
        size_t n;

        n = strcspn(p, " \t\r\v\f=");
        if (n == 0) {
                (void) error_set(ret_error, 0, "%s:%u: missing parameter name before '='", c->path, line);
                return -EINVAL;
        }
        name = p;
        p += n;
        while (is_blank(*p))
                p++;
        if (*p != '=') {
                (void) error_set(ret_error, 0, "%s:%u: missing '=' after parameter name", c->path, line);
                return -EINVAL;
        }
        name[n] = 0;
        p++;
        while (is_blank(*p))
                p++;
        value = p;
        for (const char *q = name; *q; q++)
                if ((unsigned char) *q < ' ' || *q == 0x7f) {
                        (void) error_set(ret_error, 0, "%s:%u: control character in parameter name", c->path, line);
                        return -EINVAL;
                }
        return config_set_line(c, name, value, line);
}

static int config_parse(Config *c, char *buf, size_t size, char **ret_error) {
        _cleanup_free_ char *logical = NULL;
        size_t logical_len = 0, logical_cap = 0;
        unsigned logical_line = 0, line = 0;
        char *p = buf, *end = buf + size;
        int r;

        while (p < end) {
                char *nl = memchr(p, '\n', (size_t) (end - p));
                char *eol = nl ? nl : end;
                char *s = p, *e = eol;

                line++;
                p = nl ? nl + 1 : end;
                if (memchr(s, 0, (size_t) (e - s))) {
                        (void) error_set(ret_error, 0, "%s:%u: NUL byte in line", c->path, line);
                        return -EINVAL;
                }
                while (e > s && is_blank(e[-1]))
                        e--;
                *e = 0;

                char *t = s;
                while (is_blank(*t))
                        t++;
                /* Blank and comment lines are skipped and do not end a logical line. */
                if (!*t || *t == '#')
                        continue;

                if (t != s) {
                        if (logical_line == 0) {
                                (void) error_set(ret_error, 0,
                                                 "%s:%u: continuation line (starts with white space) with no "
                                                 "parameter before it",
                                                 c->path, line);
                                return -EINVAL;
                        }
                } else {
                        if (logical_line > 0) {
                                r = parse_logical(c, logical, logical_line, ret_error);
                                if (r < 0)
                                        return r;
                        }
                        logical_len = 0;
                        logical_line = line;
                }

                size_t add = (size_t) (e - t) + 1;
                if (logical_len + add + 1 > logical_cap) {
                        size_t ncap = (logical_len + add + 1) * 2;
                        char *b = realloc(logical, ncap);
                        if (!b)
                                return -ENOMEM;
                        logical = b;
                        logical_cap = ncap;
                }
                if (logical_len > 0)
                        logical[logical_len++] = ' ';
                memcpy(logical + logical_len, t, (size_t) (e - t));
                logical_len += (size_t) (e - t);
                logical[logical_len] = 0;
        }
        if (logical_line > 0)
                return parse_logical(c, logical, logical_line, ret_error);
        return 0;
}

int config_load(const char *dir, Config **ret, char **ret_error) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        if (!dir || !ret)
                return -EINVAL;
        c = config_alloc(dir);
        if (!c)
                return -ENOMEM;
        r = read_file(c->path, &buf, &size, ret_error);
        if (r < 0)
                return r;
        /* A byte order mark from a Windows editor would otherwise become part of the first name and
         * silently turn that setting into an unknown parameter. */
        if (size >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
                r = config_parse(c, buf + 3, size - 3, ret_error);
        else
                r = config_parse(c, buf, size, ret_error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

static const char *derive_mydomain(Config *c) {
        const char *h, *dot;

        /* Postfix: $myhostname minus its first label, or "localdomain"; from the configured
         * myhostname, not the machine's, so "myhostname = mx.example.org" alone gives example.org. */
        if (c->mydomain)
                return c->mydomain;
        if (c->deriving)
                return params_default("mydomain");
        c->deriving = true;
        h = config_get(c, "myhostname");
        c->deriving = false;
        dot = h ? strchr(h, '.') : NULL;
        c->mydomain = strdup(dot && dot[1] ? dot + 1 : "localdomain");
        return c->mydomain ? c->mydomain : params_default("mydomain");
}

const char *config_get_raw(const Config *c, const char *name) {
        const Entry *e;

        if (!c || !name)
                return NULL;
        e = config_find_entry(c, name);
        if (e)
                return e->value;
        if (streq(name, "mydomain"))
                return derive_mydomain((Config *) c);
        return params_default(name);
}

bool config_is_set(const Config *c, const char *name) {
        return c && name && config_find_entry(c, name);
}

unsigned config_line_of(const Config *c, const char *name) {
        const Entry *e = c && name ? config_find_entry(c, name) : NULL;
        return e ? e->line : 0;
}

/* ---- expansion ---- */

typedef struct Buf {
        char *s;
        size_t n, cap;
} Buf;

static int buf_add(Buf *b, const char *s, size_t n) {
        if (b->n + n > EXPAND_SIZE_MAX)
                return -E2BIG;
        if (b->n + n + 1 > b->cap) {
                size_t ncap = (b->n + n + 1) * 2;
                char *x = realloc(b->s, ncap);
                if (!x)
                        return -ENOMEM;
                b->s = x;
                b->cap = ncap;
        }
        memcpy(b->s + b->n, s, n);
        b->n += n;
        b->s[b->n] = 0;
        return 0;
}

typedef struct Expander {
        Config *c;
        const char *stack[EXPAND_DEPTH_MAX];
        unsigned depth;
        unsigned cuts;        /* loops and depth overruns met; results that met one are not cached */
} Expander;

static int expand_text(Expander *x, const char *text, Buf *out);

static char **cache_slot(Config *c, const char *name, bool cut) {
        Entry *e = config_find_entry(c, name);
        const ParamInfo *p;

        if (e)
                return cut ? &e->cut : &e->expanded;
        p = params_find(name);
        if (p)
                return cut ? &c->default_cut[p - params_table] : &c->default_cache[p - params_table];
        return NULL;
}

static int expand_name(Expander *x, const char *name, Buf *out) {
        const char *raw;
        char **slot;
        unsigned cuts_before;
        Buf sub = {};
        int r;

        slot = cache_slot(x->c, name, false);
        if (slot && *slot)
                return buf_add(out, *slot, strlen(*slot));
        raw = config_get_raw(x->c, name);
        if (!raw)
                return 0;     /* unknown names expand to nothing */
        for (unsigned i = 0; i < x->depth; i++)
                if (streq(x->stack[i], name)) {
                        x->cuts++;
                        return 0;
                }
        if (x->depth >= EXPAND_DEPTH_MAX) {
                x->cuts++;
                return 0;
        }

        cuts_before = x->cuts;
        x->stack[x->depth++] = name;
        r = expand_text(x, raw, &sub);
        x->depth--;
        if (r < 0) {
                free(sub.s);
                return r;
        }
        if (!sub.s) {
                sub.s = strdup("");
                if (!sub.s)
                        return -ENOMEM;
        }
        r = buf_add(out, sub.s, sub.n);
        /* A nested expansion (derive_mydomain() expands myhostname) may have filled the slot
         * meanwhile; keep the first value rather than leak it. */
        if (r >= 0 && slot && !*slot && x->cuts == cuts_before)
                *slot = TAKE_PTR(sub.s);
        free(sub.s);
        return r;
}

static bool is_name_char(char ch) {
        return isalnum((unsigned char) ch) || ch == '_';
}

/* Finds the bracket that closes the one at open[0], allowing nested pairs of the same kind. */
static const char *find_close(const char *open) {
        char o = open[0], cl = o == '{' ? '}' : ')';
        unsigned level = 0;

        for (const char *p = open; *p; p++) {
                if (*p == o)
                        level++;
                else if (*p == cl && --level == 0)
                        return p;
        }
        return NULL;
}

/* Postfix 3 forms "{text}" and "{text1}:{text2}" after '?' or ':': the braces protect the text. On
 * success *ret_t1 and *ret_t2 (NULL for the one-branch form) point into s, which is modified. */
static bool split_branches(char *s, char **ret_t1, char **ret_t2) {
        char *close, *p;

        if (s[0] != '{')
                return false;
        close = (char *) find_close(s);
        if (!close)
                return false;
        p = close + 1;
        while (is_blank(*p))
                p++;
        if (!*p) {
                *close = 0;
                *ret_t1 = s + 1;
                *ret_t2 = NULL;
                return true;
        }
        if (*p != ':')
                return false;
        p++;
        while (is_blank(*p))
                p++;
        char *close2 = *p == '{' ? (char *) find_close(p) : NULL;
        if (!close2 || close2[1])
                return false;
        *close = 0;
        *close2 = 0;
        *ret_t1 = s + 1;
        *ret_t2 = p + 1;
        return true;
}

static int expand_braced(Expander *x, const char *inner, size_t len, Buf *out, bool *ret_ok) {
        _cleanup_free_ char *copy = strndup(inner, len);
        char *text, *t1, *t2;
        size_t n;
        int r;

        if (!copy)
                return -ENOMEM;
        n = strspn(copy, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_");
        if (n == 0 || (copy[n] && copy[n] != '?' && copy[n] != ':')) {
                *ret_ok = false;
                return 0;
        }
        *ret_ok = true;
        if (!copy[n])
                return expand_name(x, copy, out);

        char op = copy[n];
        Buf val = {};
        copy[n] = 0;
        text = copy + n + 1;
        r = expand_name(x, copy, &val);
        bool nonempty = val.n > 0;
        free(val.s);
        if (r < 0)
                return r;
        if (split_branches(text, &t1, &t2)) {
                /* ${name?{a}:{b}}: a when name is not empty, else b. "${name:{a}:{b}}" is not a form. */
                if (t2 && op != '?') {
                        *ret_ok = false;
                        return 0;
                }
                if ((op == '?') == nonempty)
                        return expand_text(x, t1, out);
                return t2 ? expand_text(x, t2, out) : 0;
        }
        if ((op == '?') == nonempty)
                return expand_text(x, text, out);
        return 0;
}

static int expand_text(Expander *x, const char *text, Buf *out) {
        const char *p = text;
        int r;

        while (*p) {
                size_t lit = strcspn(p, "$");
                if (lit > 0) {
                        r = buf_add(out, p, lit);
                        if (r < 0)
                                return r;
                        p += lit;
                        continue;
                }
                p++;    /* the '$' */
                if (*p == '$') {
                        r = buf_add(out, "$", 1);
                        p++;
                } else if (*p == '{' || *p == '(') {
                        const char *cl = find_close(p);
                        bool ok = false;
                        r = 0;
                        if (cl)
                                r = expand_braced(x, p + 1, (size_t) (cl - p - 1), out, &ok);
                        if (r < 0)
                                return r;
                        if (ok)
                                p = cl + 1;
                        else
                                r = buf_add(out, "$", 1);   /* not a reference: keep the text */
                } else if (is_name_char(*p)) {
                        size_t n = 0;
                        while (is_name_char(p[n]))
                                n++;
                        _cleanup_free_ char *name = strndup(p, n);
                        if (!name)
                                return -ENOMEM;
                        r = expand_name(x, name, out);
                        p += n;
                } else
                        r = buf_add(out, "$", 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_expand(const Config *c, const char *text, char **ret) {
        Expander x = { .c = (Config *) c };
        Buf out = {};
        int r;

        if (!c || !text || !ret)
                return -EINVAL;
        r = expand_text(&x, text, &out);
        if (r < 0) {
                free(out.s);
                return r;
        }
        if (!out.s) {
                out.s = strdup("");
                if (!out.s)
                        return -ENOMEM;
        }
        *ret = out.s;
        return 0;
}

const char *config_get(const Config *c, const char *name) {
        /* The cache lives in the Config: a loaded Config is logically read-only, expansion only
         * memoizes. */
        Config *m = (Config *) c;
        Expander x = { .c = m };
        char **slot, **cut;
        Buf out = {};
        int r;

        if (!c || !name || !config_get_raw(c, name))
                return NULL;
        slot = cache_slot(m, name, false);
        cut = cache_slot(m, name, true);
        if (!slot || !cut)
                return "";
        if (*slot)
                return *slot;
        if (*cut)
                return *cut;
        r = expand_name(&x, name, &out);
        if (r >= 0 && *slot) {
                free(out.s);
                return *slot;
        }
        if (*cut) {       /* filled by a nested call for the same name */
                free(out.s);
                return *cut;
        }
        /* Cut by a loop (so not cached for nested use, where the cut would fall elsewhere) or too
         * large: keep the result for this name alone, so the caller gets a stable pointer; a value
         * that is too large counts as empty. */
        if (*cut) {
                /* Filled by a nested config_get() of the same name (through derive_mydomain()). */
                free(out.s);
                return *cut;
        }
        if (r < 0 || !out.s) {
                free(out.s);
                out.s = strdup("");
                if (!out.s)
                        return "";
        }
        *cut = out.s;
        return *cut;
}

/* ---- typed values ---- */

int config_parse_bool(const char *s, bool *ret) {
        if (!s || !ret)
                return -EINVAL;
        if (strcaseeq(s, "yes"))
                *ret = true;
        else if (strcaseeq(s, "no"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_u64_prefix(const char *s, uint64_t *ret, const char **ret_end) {
        uint64_t v = 0;
        const char *p = s;

        if (!isdigit((unsigned char) *p))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++) {
                unsigned d = (unsigned) (*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        *ret_end = p;
        return 0;
}

int config_parse_size(const char *s, uint64_t *ret) {
        const char *end;
        uint64_t v;
        int r;

        if (!s || !ret)
                return -EINVAL;
        r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int config_parse_time(const char *s, char default_unit, uint64_t *ret_seconds) {
        const char *end;
        uint64_t v, mult;
        char unit;
        int r;

        if (!s || !ret_seconds)
                return -EINVAL;
        r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end && end[1])
                return -EINVAL;
        unit = *end ? *end : (default_unit ? default_unit : 's');
        switch (unit) {
        case 's':
                mult = 1;
                break;
        case 'm':
                mult = 60;
                break;
        case 'h':
                mult = 3600;
                break;
        case 'd':
                mult = 86400;
                break;
        case 'w':
                mult = 604800;
                break;
        default:
                return -EINVAL;
        }
        if (v > UINT64_MAX / mult)
                return -ERANGE;
        *ret_seconds = v * mult;
        return 0;
}

static int parse_int(const char *s, int64_t *ret) {
        bool neg = false;
        const char *end;
        uint64_t v;
        int r;

        if (*s == '-') {
                neg = true;
                s++;
        }
        r = parse_u64_prefix(s, &v, &end);
        if (r < 0)
                return r;
        if (*end)
                return -EINVAL;
        if (neg) {
                if (v > (uint64_t) INT64_MAX + 1)
                        return -ERANGE;
                *ret = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) v;
        } else {
                if (v > INT64_MAX)
                        return -ERANGE;
                *ret = (int64_t) v;
        }
        return 0;
}

static int get_value(const Config *c, const char *name, const char **ret) {
        const char *v = config_get(c, name);
        if (!v)
                return -ENOENT;
        *ret = v;
        return 0;
}

int config_get_bool(const Config *c, const char *name, bool *ret) {
        const char *v;
        int r = get_value(c, name, &v);
        return r < 0 ? r : config_parse_bool(v, ret);
}

int config_get_size(const Config *c, const char *name, uint64_t *ret) {
        const char *v;
        int r = get_value(c, name, &v);
        return r < 0 ? r : config_parse_size(v, ret);
}

int config_get_int(const Config *c, const char *name, int64_t *ret) {
        const char *v;
        int64_t x;
        int r = get_value(c, name, &v);
        if (r < 0)
                return r;
        r = parse_int(v, &x);
        if (r < 0)
                return r;
        *ret = x;
        return 0;
}

int config_get_time(const Config *c, const char *name, uint64_t *ret_seconds) {
        const ParamInfo *p = params_find(name);
        const char *v;
        int r = get_value(c, name, &v);
        if (r < 0)
                return r;
        return config_parse_time(v, p && p->type == PARAM_TIME ? p->time_unit : 's', ret_seconds);
}

int config_get_list(const Config *c, const char *name, char ***ret) {
        const char *v;
        int r = get_value(c, name, &v);
        return r < 0 ? r : strv_split_list(v, ret);
}

int config_unknown(const Config *c, char ***ret_names, unsigned **ret_lines) {
        _cleanup_strv_free_ char **names = NULL;
        _cleanup_free_ unsigned *lines = NULL;
        size_t n = 0;
        int r;

        if (!c || !ret_names)
                return -EINVAL;
        names = calloc(1, sizeof(char *));
        lines = calloc(c->n_entries + 1, sizeof(unsigned));
        if (!names || !lines)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_entries; i++) {
                if (params_find(c->entries[i].name))
                        continue;
                r = strv_extend(&names, c->entries[i].name);
                if (r < 0)
                        return r;
                lines[n++] = c->entries[i].line;
        }
        *ret_names = TAKE_PTR(names);
        if (ret_lines)
                *ret_lines = TAKE_PTR(lines);
        return 0;
}

int config_set_names(const Config *c, char ***ret) {
        _cleanup_strv_free_ char **names = NULL;
        int r;

        if (!c || !ret)
                return -EINVAL;
        names = calloc(1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_entries; i++) {
                r = strv_extend(&names, c->entries[i].name);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(names);
        return 0;
}
