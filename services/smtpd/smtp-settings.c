/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strv.h"
#include "services/smtpd/smtp-settings.h"
#include "services/smtpd/smtp-tls.h"

static const char *get(const Config *c, const char *name, const char *def) {
        const char *v = config_get(c, name);
        return v ? v : def;
}

static int get_size(const Config *c, const char *name, uint64_t def, uint64_t *ret, char **ret_error) {
        const char *v = config_get(c, name);
        if (isempty(v)) {
                *ret = def;
                return 0;
        }
        if (config_parse_size(v, ret) < 0)
                return error_set(ret_error, -EINVAL, "%s: bad value \"%s\"", name, v);
        return 0;
}

static int get_time(const Config *c, const char *name, uint64_t def, uint64_t *ret, char **ret_error) {
        const char *v = config_get(c, name);
        if (isempty(v)) {
                *ret = def;
                return 0;
        }
        if (config_parse_time(v, 's', ret) < 0)
                return error_set(ret_error, -EINVAL, "%s: bad value \"%s\"", name, v);
        return 0;
}

static int resolve_credential(const char *configured, const char *credential, char **ret) {
        if (!isempty(configured)) {
                *ret = strdup(configured);
                return *ret ? 0 : -ENOMEM;
        }
        const char *d = getenv("CREDENTIALS_DIRECTORY");
        if (isempty(d)) {
                *ret = NULL;
                return 0;
        }
        if (asprintf(ret, "%s/%s", d, credential) < 0)
                return -ENOMEM;
        return 0;
}

int smtp_settings_new(Config *c, const SmtpSettings *old, SmtpSettings **ret, char **ret_error) {
        _cleanup_(config_freep) Config *config = c;
        _cleanup_(smtp_settings_unrefp) SmtpSettings *s = NULL;
        _cleanup_strv_free_ char **relay = NULL;
        int r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->mail_owner_uid = (uid_t) -1;

        s->hostname = strdup(get(c, "myhostname", "localhost"));
        s->banner = strdup(get(c, "smtpd_banner", s->hostname ? s->hostname : "localhost"));
        s->queue_dir = strdup(get(c, "queue_directory", "/var/spool/mta"));
        s->myorigin = strdup(get(c, "myorigin", s->hostname ? s->hostname : "localhost"));
        s->mail_owner = strdup(get(c, "mail_owner", "mta"));
        if (!s->hostname || !s->banner || !s->queue_dir || !s->myorigin || !s->mail_owner)
                return -ENOMEM;
        ascii_strlower(s->myorigin);
        struct passwd *pw = getpwnam(s->mail_owner);
        if (pw)
                s->mail_owner_uid = pw->pw_uid;

        uint64_t timeout;
        if ((r = get_size(c, "message_size_limit", 10240000, &s->message_size_limit, ret_error)) < 0 ||
            (r = get_size(c, "smtpd_recipient_limit", 1000, &s->recipient_limit, ret_error)) < 0 ||
            (r = get_size(c, "smtpd_hard_error_limit", 20, &s->hard_error_limit, ret_error)) < 0 ||
            (r = get_size(c, "line_length_limit", 2048, &s->line_length_limit, ret_error)) < 0 ||
            (r = get_size(c, "queue_minfree", 0, &s->queue_minfree, ret_error)) < 0 ||
            (r = get_size(c, "smtpd_client_connection_count_limit", 50, &s->client_connection_limit,
                          ret_error)) < 0 ||
            (r = get_size(c, "smtpd_soft_error_limit", 10, &s->soft_error_limit, ret_error)) < 0 ||
            (r = get_time(c, "smtpd_error_sleep_time", 1, &s->error_sleep_usec, ret_error)) < 0 ||
            (r = get_time(c, "smtpd_timeout", 300, &timeout, ret_error)) < 0)
                return r;
        s->error_sleep_usec *= 1000000ULL;
        if (timeout == 0)
                timeout = 1;
        s->timeout_usec = timeout * 1000000ULL;
        if (s->line_length_limit < 512)
                s->line_length_limit = 512;     /* RFC 5321 command lines must fit */
        if (s->line_length_limit > 1024 * 1024)
                s->line_length_limit = 1024 * 1024;
        if (s->recipient_limit == 0)
                s->recipient_limit = 1000;

        r = strv_split_list(get(c, "smtpd_relay_restrictions",
                                "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"),
                            &relay);
        if (r < 0)
                return r;
        s->relay_deny = RELAY_DEFER;
        for (char **i = relay; i && *i; i++) {
                if (strcaseeq(*i, "permit_mynetworks"))
                        s->permit_mynetworks = true;
                else if (strcaseeq(*i, "reject_unauth_destination"))
                        s->relay_deny = RELAY_REJECT;
                else if (strcaseeq(*i, "defer_unauth_destination"))
                        s->relay_deny = RELAY_DEFER;
        }

        (void) config_get_bool(c, "smtpd_helo_required", &s->helo_required);
        const char *bare = get(c, "smtpd_forbid_bare_newline", "normalize");
        if (strcaseeq(bare, "yes") || strcaseeq(bare, "reject"))
                s->bare_newline_reject = true;
        else if (!strcaseeq(bare, "normalize") && !strcaseeq(bare, "no") && !isempty(bare))
                return error_set(ret_error, -EINVAL, "smtpd_forbid_bare_newline: unknown value \"%s\"", bare);

        _cleanup_free_ char *nerr = NULL;
        r = netlist_parse(get(c, "mynetworks", "127.0.0.0/8 [::1]/128"), &s->mynetworks, &nerr);
        if (r < 0)
                return error_set(ret_error, -EINVAL, "mynetworks: %s", strempty(nerr));

        r = resolver_new(c, &s->resolver);
        if (r < 0)
                return error_set(ret_error, -EINVAL, "cannot set up the address resolver: %s", strerror(-r));

        const char *level = get(c, "smtpd_tls_security_level", "");
        if (isempty(level) || strcaseeq(level, "none"))
                s->tls_level = TLS_LEVEL_NONE;
        else if (strcaseeq(level, "may"))
                s->tls_level = TLS_LEVEL_MAY;
        else if (strcaseeq(level, "encrypt"))
                s->tls_level = TLS_LEVEL_ENCRYPT;
        else
                return error_set(ret_error, -EINVAL, "smtpd_tls_security_level: unknown level \"%s\"", level);

        if (s->tls_level != TLS_LEVEL_NONE) {
                _cleanup_free_ char *cert = NULL, *key = NULL;
                if (resolve_credential(get(c, "smtpd_tls_cert_file", ""), "smtpd-cert", &cert) < 0 ||
                    resolve_credential(get(c, "smtpd_tls_key_file", ""), "smtpd-key", &key) < 0)
                        return -ENOMEM;
                if (!cert || !key)
                        return error_set(ret_error, -EINVAL, "smtpd_tls_security_level = %s needs smtpd_tls_cert_file and "
                                         "smtpd_tls_key_file (or credentials smtpd-cert and smtpd-key)", level);
                r = smtp_tls_context_new(cert, key, &s->tls, ret_error);
                if (r < 0) {
                        if (!old || !old->tls)
                                return r;
                        /* After a reload without privileges, keep what we had. */
                        if (ret_error) {
                                free(*ret_error);
                                *ret_error = NULL;
                        }
                        s->tls = smtp_tls_context_ref(old->tls);
                }
        }

        s->config = TAKE_PTR(config);
        *ret = TAKE_PTR(s);
        return 0;
}

int smtp_settings_load(const char *dir, const SmtpSettings *old, SmtpSettings **ret, char **ret_error) {
        Config *c = NULL;
        int r;

        r = config_load(dir, &c, ret_error);
        if (r == -ENOENT) {
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = NULL;
                }
                r = config_new_defaults(dir, &c);
        }
        if (r < 0)
                return r;
        return smtp_settings_new(c, old, ret, ret_error);
}

SmtpSettings *smtp_settings_ref(SmtpSettings *s) {
        if (s)
                s->n_ref++;
        return s;
}

SmtpSettings *smtp_settings_unref(SmtpSettings *s) {
        if (!s || --s->n_ref > 0)
                return NULL;
        resolver_free(s->resolver);
        netlist_free(s->mynetworks);
        config_free(s->config);
        smtp_tls_context_unref(s->tls);
        free(s->hostname);
        free(s->banner);
        free(s->queue_dir);
        free(s->myorigin);
        free(s->mail_owner);
        free(s);
        return NULL;
}
