/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "common/macro.h"
#include "common/mailq.h"
#include "common/strv.h"

typedef struct LockedFile {
        unsigned major, minor;
        unsigned long inode;
} LockedFile;

/* flock()ed files, from /proc/locks: looking, rather than trying the lock ourselves, never makes a
 * runner skip a message because mailq held it for a moment. */
static size_t read_locks(LockedFile **ret) {
        FILE *f = fopen("/proc/locks", "re");
        LockedFile *l = NULL;
        size_t n = 0;
        char line[512];

        *ret = NULL;
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f)) {
                char kind[32];
                unsigned maj, min;
                unsigned long ino;
                /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters have "->". */
                if (strstr(line, "->"))
                        continue;
                if (sscanf(line, "%*d: %31s %*s %*s %*d %x:%x:%lu", kind, &maj, &min, &ino) != 4)
                        continue;
                if (!streq(kind, "FLOCK"))
                        continue;
                LockedFile *k = realloc(l, (n + 1) * sizeof *k);
                if (!k)
                        break;
                l = k;
                l[n++] = (LockedFile) { maj, min, ino };
        }
        fclose(f);
        *ret = l;
        return n;
}

static bool is_locked(const LockedFile *l, size_t n, int fd) {
        struct stat st;
        if (fstat(fd, &st) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (l[i].major == major(st.st_dev) && l[i].minor == minor(st.st_dev) && l[i].inode == st.st_ino)
                        return true;
        return false;
}

static void put_clean(FILE *o, const char *s) {
        for (const unsigned char *p = (const unsigned char *) strempty(s); *p; p++)
                fputc(*p < 0x20 || *p == 0x7f ? '?' : *p, o);
}

typedef struct Entry {
        char *id;
        QueueDir dir;
} Entry;

static int cmp_entry(const void *a, const void *b) {
        return strcmp(((const Entry *) a)->id, ((const Entry *) b)->id);
}

/* defer/ID: lines "RCPTINDEX\tREASON". */
static char **read_reasons(const char *queue_dir, const char *id, size_t n_rcpt) {
        _cleanup_free_ char *path = NULL;
        char **reasons = calloc(n_rcpt + 1, sizeof(char *));
        if (!reasons)
                return NULL;
        if (asprintf(&path, "%s/defer/%s", queue_dir, id) < 0)
                return reasons;
        FILE *f = fopen(path, "re");
        if (!f)
                return reasons;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, f)) > 0) {
                if (line[len - 1] == '\n')
                        line[len - 1] = 0;
                char *tab = strchr(line, '\t'), *e;
                if (!tab)
                        continue;
                *tab = 0;
                errno = 0;
                unsigned long idx = strtoul(line, &e, 10);
                if (errno || *e || e == line || idx >= n_rcpt || reasons[idx])
                        continue;
                reasons[idx] = strdup(tab + 1);
        }
        free(line);
        fclose(f);
        return reasons;
}

static void print_entry(FILE *o, const char *queue_dir, const Entry *e, const QueueFile *f, bool active,
                        uint64_t *total) {
        char when[64];
        time_t t = (time_t) f->arrival;
        struct tm tm;
        char flag = e->dir == QUEUE_HOLD ? '!' : active ? '*' : ' ';

        if (!localtime_r(&t, &tm) || strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm) == 0)
                snprintf(when, sizeof when, "-");
        fprintf(o, "%s%c %8" PRIu64 " %s  ", f->id, flag, f->content_size, when);
        if (isempty(f->sender))
                fputs("MAILER-DAEMON", o);
        else
                put_clean(o, f->sender);
        fputc('\n', o);
        *total += f->content_size;

        char **reasons = read_reasons(queue_dir, f->id, f->n_recipients);
        bool *shown = calloc(f->n_recipients + 1, sizeof(bool));
        if (reasons && shown) {
                /* Recipients grouped under their reason, in order of first appearance. */
                for (size_t i = 0; i < f->n_recipients; i++) {
                        if (!reasons[i] || shown[i] || f->recipients[i].status != RECIPIENT_PENDING)
                                continue;
                        fputc('(', o);
                        put_clean(o, reasons[i]);
                        fputs(")\n", o);
                        for (size_t j = i; j < f->n_recipients; j++)
                                if (!shown[j] && reasons[j] && streq(reasons[j], reasons[i]) &&
                                    f->recipients[j].status == RECIPIENT_PENDING) {
                                        fprintf(o, "%41s", "");
                                        put_clean(o, f->recipients[j].address);
                                        fputc('\n', o);
                                        shown[j] = true;
                                }
                }
        }
        for (size_t i = 0; i < f->n_recipients; i++) {
                if (f->recipients[i].status != RECIPIENT_PENDING || (shown && shown[i]))
                        continue;
                fprintf(o, "%41s", "");
                put_clean(o, f->recipients[i].address);
                fputc('\n', o);
        }
        fputc('\n', o);
        strv_free(reasons);
        free(shown);
}

int mailq_print(FILE *o, const char *queue_dir) {
        static const QueueDir dirs[] = { QUEUE_NEW, QUEUE_DEFERRED, QUEUE_HOLD };
        Entry *entries = NULL;
        size_t n = 0, shown = 0;
        uint64_t total = 0;
        LockedFile *locks = NULL;
        size_t n_locks;
        int r = 0;

        for (size_t d = 0; d < ELEMENTSOF(dirs); d++) {
                _cleanup_strv_free_ char **ids = NULL;
                r = queue_list(queue_dir, dirs[d], &ids);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        goto finish;
                for (char **i = ids; i && *i; i++) {
                        Entry *k = realloc(entries, (n + 1) * sizeof *k);
                        if (!k) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        entries = k;
                        entries[n].id = strdup(*i);
                        entries[n].dir = dirs[d];
                        if (!entries[n].id) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        n++;
                }
        }
        r = 0;
        if (n > 0)
                qsort(entries, n, sizeof *entries, cmp_entry);
        n_locks = read_locks(&locks);

        for (size_t i = 0; i < n; i++) {
                _cleanup_(queue_file_freep) QueueFile *f = NULL;
                if (queue_file_open_id(queue_dir, entries[i].dir, entries[i].id, O_RDONLY, false, &f) < 0)
                        continue;
                if (shown == 0)
                        fputs("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n", o);
                print_entry(o, queue_dir, &entries[i], f, is_locked(locks, n_locks, f->fd), &total);
                shown++;
        }
        if (shown == 0)
                fputs("Mail queue is empty\n", o);
        else
                fprintf(o, "-- %" PRIu64 " Kbytes in %zu Request%s.\n", (total + 1023) / 1024, shown,
                        shown == 1 ? "" : "s");
finish:
        for (size_t i = 0; i < n; i++)
                free(entries[i].id);
        free(entries);
        free(locks);
        return r;
}

int mailq_count(const char *queue_dir, size_t ret[static _QUEUE_DIR_MAX]) {
        size_t c[_QUEUE_DIR_MAX] = {};
        for (QueueDir d = 0; d < _QUEUE_DIR_MAX; d++) {
                _cleanup_strv_free_ char **ids = NULL;
                int r = queue_list(queue_dir, d, &ids);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                c[d] = strv_length(ids);
        }
        memcpy(ret, c, sizeof c);
        return 0;
}
