/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Length-prefixed records, "T<len>:<bytes>\n", the one encoding of the queue file and of the local
 * delivery protocol. A record's bytes may hold anything (CR, LF, NUL): the length, not a
 * delimiter, ends it, so data can never forge a record.
 *
 * record_next() returns 1 and the record, 0 at the end of the buffer, -EBADMSG when the next bytes
 * are not a well-formed record (bad letter, bad or overlong length, missing "\n", truncation).
 */

#include <stddef.h>
#include <stdint.h>

/* Lengths are at most 20 digits; the queue's M record uses exactly 20. */
#define RECORD_LEN_DIGITS_MAX 20

typedef struct Record {
        char type;
        const char *data;
        size_t len;
} Record;

/* Appends a record at buf + *pos; -ENOBUFS when it would not fit in size. */
int record_put(char *buf, size_t size, size_t *pos, char type, const void *data, size_t len);
int record_put_string(char *buf, size_t size, size_t *pos, char type, const char *s);
int record_put_u64(char *buf, size_t size, size_t *pos, char type, uint64_t v);

/* Reads the record at buf + *pos and advances *pos past it. */
int record_next(const char *buf, size_t len, size_t *pos, Record *ret);

/* Parses the decimal length field; -EBADMSG unless 1..20 digits and no overflow. */
int record_parse_len(const char *s, size_t n, uint64_t *ret);

/* Parses a record's data as a decimal unsigned number. */
int record_parse_u64(const Record *r, uint64_t *ret);
