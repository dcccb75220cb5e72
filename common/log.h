/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging for the programs (code in common/ does not log, apart from debug). Messages go to the
 * journal with structured fields when journald is reachable and to stderr otherwise, as
 * "ident: message". log_*_errno() return the negative errno they were given, so callers can
 * write `return log_error_errno(r, "...: %m");` (%m prints that errno).
 *
 * log_event() is for mail events: it sends MESSAGE plus the given MTA_* fields (see PRODUCT.md);
 * fields whose value is NULL are left out.
 */

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "common/macro.h"

typedef struct LogField {
        const char *name;        /* e.g. "MTA_QUEUE_ID" */
        const char *value;       /* NULL: field left out */
} LogField;

typedef enum LogTarget {
        LOG_TARGET_AUTO,         /* journal when its socket exists, else stderr */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
} LogTarget;

void log_setup(const char *ident, LogTarget target);
void log_set_max_level(int level);        /* LOG_DEBUG enables debug messages */
int log_get_max_level(void);
bool log_to_journal(void);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

void log_event(int level, const LogField *fields, size_t n_fields, const char *format, ...)
        _printf_(4, 5);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")
