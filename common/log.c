/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "common/log.h"

static const char *log_ident = "mta";
static int log_max_level = LOG_INFO;
static bool log_journal = false;

void log_setup(const char *ident, LogTarget target) {
        if (ident)
                log_ident = ident;
        switch (target) {
        case LOG_TARGET_JOURNAL:
                log_journal = true;
                break;
        case LOG_TARGET_STDERR:
                log_journal = false;
                break;
        default:
                /* Under systemd stdout/stderr are journal streams anyway; the native protocol is
                 * preferred because it carries our structured fields. */
                log_journal = access("/run/systemd/journal/socket", W_OK) == 0;
        }
        const char *e = getenv("MTA_LOG_LEVEL");
        if (e && streq(e, "debug"))
                log_max_level = LOG_DEBUG;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

bool log_to_journal(void) {
        return log_journal;
}

static void log_send(int level, const LogField *fields, size_t n_fields, const char *message,
                     const char *file, int line, const char *func) {
        if (!log_journal) {
                fprintf(stderr, "%s: %s\n", log_ident, message);
                return;
        }

        struct iovec iov[n_fields + 6];
        char *strings[n_fields + 6];
        size_t n = 0;
        bool ok = true;

#define ADD(...)                                                               \
        do {                                                                   \
                if (asprintf(&strings[n], __VA_ARGS__) < 0) {                 \
                        ok = false;                                            \
                        goto send;                                             \
                }                                                              \
                iov[n].iov_base = strings[n];                                  \
                iov[n].iov_len = strlen(strings[n]);                           \
                n++;                                                           \
        } while (0)

        ADD("MESSAGE=%s", message);
        ADD("PRIORITY=%d", level);
        ADD("SYSLOG_IDENTIFIER=%s", log_ident);
        if (file) {
                ADD("CODE_FILE=%s", file);
                ADD("CODE_LINE=%d", line);
                ADD("CODE_FUNC=%s", func);
        }
        for (size_t i = 0; i < n_fields; i++) {
                /* Values may come from clients; sd_journal_sendv() frames each iovec as one field, so a
                 * newline inside a value cannot start a new field. */
                if (!fields[i].value)
                        continue;
                if (n >= ELEMENTSOF(iov))
                        break;
                ADD("%s=%s", fields[i].name, fields[i].value);
        }
send:
        if (!ok || sd_journal_sendv(iov, (int) n) < 0)
                fprintf(stderr, "%s: %s\n", log_ident, message);
        for (size_t i = 0; i < n; i++)
                free(strings[i]);
#undef ADD
}

int log_internal(int level, int error, const char *file, int line, const char *func, const char *format,
                 ...) {
        int e = error < 0 ? -error : error;
        if (level > log_max_level)
                return -e;

        char buf[2048];
        va_list ap;
        errno = e;
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        log_send(level, NULL, 0, buf, level >= LOG_DEBUG ? file : NULL, line, func);
        return -e;
}

void log_event(int level, const LogField *fields, size_t n_fields, const char *format, ...) {
        if (level > log_max_level)
                return;
        char buf[4096];
        va_list ap;
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
        log_send(level, fields, n_fields, buf, NULL, 0, NULL);
}
