/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * STARTTLS with GnuTLS on a non-blocking socket. SmtpTlsContext holds the server credentials
 * (refcounted: settings from before and after a reload may share them); SmtpTls is one
 * connection's TLS state. The I/O functions return bytes transferred, 0 at end of stream,
 * -EAGAIN when the socket is not ready (smtp_tls_wants_write() tells which way), or -EIO/-EPROTO on
 * a TLS failure, after which the connection must be closed.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/macro.h"

typedef struct SmtpTlsContext SmtpTlsContext;
typedef struct SmtpTls SmtpTls;

/* Loads a PEM certificate (chain) and key. */
int smtp_tls_context_new(const char *cert_file, const char *key_file, SmtpTlsContext **ret, char **ret_error);
SmtpTlsContext *smtp_tls_context_ref(SmtpTlsContext *c);
SmtpTlsContext *smtp_tls_context_unref(SmtpTlsContext *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpTlsContext *, smtp_tls_context_unref);

int smtp_tls_new(SmtpTlsContext *c, int fd, SmtpTls **ret);
SmtpTls *smtp_tls_free(SmtpTls *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpTls *, smtp_tls_free);

/* 1 when the handshake is complete, -EAGAIN to call again when the socket is ready. */
int smtp_tls_handshake(SmtpTls *t);
ssize_t smtp_tls_recv(SmtpTls *t, void *buf, size_t len);
/* After -EAGAIN, call again with the same buffer and length. */
ssize_t smtp_tls_send(SmtpTls *t, const void *buf, size_t len);
/* Bytes already decrypted and buffered inside GnuTLS (epoll will not report them). */
size_t smtp_tls_pending(SmtpTls *t);
bool smtp_tls_wants_write(SmtpTls *t);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"-like text for logs and Received:. */
const char *smtp_tls_description(SmtpTls *t);
/* Sends close_notify, best effort. */
void smtp_tls_bye(SmtpTls *t);
