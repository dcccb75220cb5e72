/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "common/strv.h"
#include "common/tls-lib.h"
#include "services/smtpd/smtp-tls.h"

struct SmtpTlsContext {
        unsigned n_ref;
        gnutls_certificate_credentials_t cred;
};

struct SmtpTls {
        SmtpTlsContext *ctx;
        gnutls_session_t session;
        char *desc;
        bool handshake_done;
};

int smtp_tls_context_new(const char *cert_file, const char *key_file, SmtpTlsContext **ret, char **ret_error) {
        SmtpTlsContext *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        r = tls_lib_load();
        if (r < 0) {
                free(c);
                return error_set(ret_error, r, "cannot use TLS: %s is not available", "GnuTLS");
        }
        r = sym_gnutls_certificate_allocate_credentials(&c->cred);
        if (r < 0) {
                free(c);
                return -ENOMEM;
        }
        r = sym_gnutls_certificate_set_x509_key_file2(c->cred, cert_file, key_file, GNUTLS_X509_FMT_PEM, NULL, 0);
        if (r < 0) {
                if (ret_error && asprintf(ret_error, "cannot load TLS certificate %s and key %s: %s",
                                          cert_file, key_file, sym_gnutls_strerror(r)) < 0)
                        *ret_error = NULL;
                smtp_tls_context_unref(c);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}

SmtpTlsContext *smtp_tls_context_ref(SmtpTlsContext *c) {
        if (c)
                c->n_ref++;
        return c;
}

SmtpTlsContext *smtp_tls_context_unref(SmtpTlsContext *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        if (c->cred)
                sym_gnutls_certificate_free_credentials(c->cred);
        free(c);
        return NULL;
}

int smtp_tls_new(SmtpTlsContext *c, int fd, SmtpTls **ret) {
        SmtpTls *t;
        int r;

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        r = sym_gnutls_init(&t->session, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
        if (r < 0) {
                free(t);
                return -ENOMEM;
        }
        t->ctx = smtp_tls_context_ref(c);
        if (sym_gnutls_set_default_priority(t->session) < 0 ||
            sym_gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, c->cred) < 0) {
                smtp_tls_free(t);
                return -EIO;
        }
        sym_gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_IGNORE);
        sym_gnutls_transport_set_int2(t->session, fd, fd);
        *ret = t;
        return 0;
}

SmtpTls *smtp_tls_free(SmtpTls *t) {
        if (!t)
                return NULL;
        sym_gnutls_deinit(t->session);
        smtp_tls_context_unref(t->ctx);
        free(t->desc);
        free(t);
        return NULL;
}

static int map_error(int r) {
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                return -EAGAIN;
        if (r == GNUTLS_E_PREMATURE_TERMINATION)
                return -ECONNRESET;
        return -EPROTO;
}

int smtp_tls_handshake(SmtpTls *t) {
        int r;

        if (t->handshake_done)
                return 1;
        for (;;) {
                r = sym_gnutls_handshake(t->session);
                if (r == GNUTLS_E_SUCCESS)
                        break;
                if (r == GNUTLS_E_INTERRUPTED)
                        continue;
                if (r == GNUTLS_E_AGAIN)
                        return -EAGAIN;
                /* Warning alerts (e.g. no_renegotiation) are not fatal. */
                if (!sym_gnutls_error_is_fatal(r))
                        continue;
                return -EPROTO;
        }
        t->handshake_done = true;
        return 1;
}

ssize_t smtp_tls_recv(SmtpTls *t, void *buf, size_t len) {
        for (;;) {
                ssize_t n = sym_gnutls_record_recv(t->session, buf, len);
                if (n >= 0)
                        return n;
                if (n == GNUTLS_E_INTERRUPTED)
                        continue;
                if (n == GNUTLS_E_REHANDSHAKE || (!sym_gnutls_error_is_fatal((int) n) && n != GNUTLS_E_AGAIN))
                        continue;
                return map_error((int) n);
        }
}

ssize_t smtp_tls_send(SmtpTls *t, const void *buf, size_t len) {
        for (;;) {
                ssize_t n = sym_gnutls_record_send(t->session, buf, len);
                if (n >= 0)
                        return n;
                if (n == GNUTLS_E_INTERRUPTED)
                        continue;
                return map_error((int) n);
        }
}

size_t smtp_tls_pending(SmtpTls *t) {
        return sym_gnutls_record_check_pending(t->session);
}

bool smtp_tls_wants_write(SmtpTls *t) {
        return sym_gnutls_record_get_direction(t->session) == 1;
}

const char *smtp_tls_description(SmtpTls *t) {
        if (!t->desc) {
                const char *v = sym_gnutls_protocol_get_name(sym_gnutls_protocol_get_version(t->session));
                const char *c = sym_gnutls_cipher_get_name(sym_gnutls_cipher_get(t->session));
                if (asprintf(&t->desc, "%s with cipher %s", v ? v : "TLS", c ? c : "unknown") < 0)
                        t->desc = NULL;
        }
        return t->desc ? t->desc : "TLS";
}

void smtp_tls_bye(SmtpTls *t) {
        (void) sym_gnutls_bye(t->session, GNUTLS_SHUT_WR);
}
