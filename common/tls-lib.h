/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GnuTLS, loaded with dlopen() when a program first needs TLS instead of at every start. Linked
 * normally, GnuTLS and the eleven libraries it pulls in cost each start of mta-smtpd and mta-queue
 * about 3 ms on these machines, almost half of a socket-activated receiver's time to its banner;
 * a receiver without TLS configured and a queue run that meets no STARTTLS never load it.
 *
 * Callers use the sym_ pointers below, with GnuTLS's own types and constants, once tls_lib_load()
 * returned 0. tls_lib_load() returns 0 (also when already loaded) or -EOPNOTSUPP when the library
 * or one of its functions is missing; the reason is then logged once.
 */

#include <gnutls/gnutls.h>

#define TLS_LIB_SYMBOLS(X)                              \
        X(gnutls_bye)                                   \
        X(gnutls_certificate_allocate_credentials)     \
        X(gnutls_certificate_free_credentials)         \
        X(gnutls_certificate_server_set_request)       \
        X(gnutls_certificate_set_x509_key_file2)       \
        X(gnutls_cipher_get)                            \
        X(gnutls_cipher_get_name)                       \
        X(gnutls_credentials_set)                       \
        X(gnutls_deinit)                                \
        X(gnutls_error_is_fatal)                        \
        X(gnutls_handshake)                             \
        X(gnutls_handshake_set_timeout)                 \
        X(gnutls_init)                                  \
        X(gnutls_protocol_get_name)                     \
        X(gnutls_protocol_get_version)                  \
        X(gnutls_record_check_pending)                  \
        X(gnutls_record_get_direction)                  \
        X(gnutls_record_recv)                           \
        X(gnutls_record_send)                           \
        X(gnutls_server_name_set)                       \
        X(gnutls_set_default_priority)                  \
        X(gnutls_strerror)                              \
        X(gnutls_transport_set_int2)

#define TLS_LIB_DECLARE(name) extern typeof(name) *sym_##name;
TLS_LIB_SYMBOLS(TLS_LIB_DECLARE)
#undef TLS_LIB_DECLARE

int tls_lib_load(void);
