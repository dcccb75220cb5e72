/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/params.h"

#define NO_EFFECT "accepted for compatibility; no effect"

#define S(n, d, doc) { n, PARAM_STRING, d, 0, doc }
#define L(n, d, doc) { n, PARAM_LIST, d, 0, doc }
#define B(n, d, doc) { n, PARAM_BOOL, d, 0, doc }
#define Z(n, d, doc) { n, PARAM_SIZE, d, 0, doc }
#define T(n, d, u, doc) { n, PARAM_TIME, d, u, doc }
#define I(n, d, doc) { n, PARAM_INT, d, 0, doc }
#define M(n, d, doc) { n, PARAM_MAPS, d, 0, doc }

/*
 * Grouped by subject; params_find() and the listings use a sorted index, so order here does not
 * matter. Names and defaults are Postfix's unless the doc line says otherwise. A parameter we accept
 * so that a copied Postfix main.cf loads cleanly, but do not act on, says so in its doc line.
 */
const ParamInfo params_table[] = {
        /* Identity */
        S("myhostname", NULL,
          "Fully qualified name of this host; default from gethostname(), with \".localdomain\" "
          "appended when it has no dot."),
        S("mydomain", NULL,
          "Domain of this host; default $myhostname minus its first label, or \"localdomain\"."),
        S("myorigin", "$myhostname", "Domain appended to unqualified sender and recipient addresses."),
        L("mydestination", "$myhostname, localhost.$mydomain, localhost",
          "Domains delivered locally (mail_spool_directory)."),
        S("mail_name", "mta", "Name of the mail system, used in smtpd_banner and bounce messages."),
        S("mail_owner", "mta", "Unprivileged account that owns the queue and runs the services."),
        S("default_privs", "nobody",
          "Account used for command and file deliveries from aliases that no user owns."),
        S("smtpd_banner", "$myhostname ESMTP $mail_name", "Text after the 220 code of the SMTP greeting."),
        S("compatibility_level", "3.6", "Postfix compatibility level; " NO_EFFECT "."),
        S("syslog_name", "$mail_name", "Prefix of log identifiers; " NO_EFFECT " (programs log as mta-*)."),
        S("mail_version", "0.1.0", "Version of the mail system; informational."),

        /* Networks and relaying */
        L("mynetworks", "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128",
          "Trusted client networks (CIDR, [IPv6]/len, /file/name, !exclusion) for permit_mynetworks."),
        S("mynetworks_style", "host",
          "How mynetworks is derived when not set; " NO_EFFECT " (mynetworks default is loopback)."),
        L("inet_interfaces", "all",
          "Listening addresses; " NO_EFFECT " (mta.socket owns the listening sockets)."),
        L("inet_protocols", "all",
          "Address families used; " NO_EFFECT " (mta.socket sets the listening families)."),
        S("relayhost", "",
          "Next hop for non-local mail: host (MX lookup), [host] (no MX lookup), [host]:port; empty: "
          "deliver directly."),
        L("relay_domains", "",
          "Domains this host relays mail to; " NO_EFFECT " (relaying is for mynetworks clients only)."),
        L("smtpd_relay_restrictions",
          "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
          "Relay policy applied to RCPT TO."),
        L("smtpd_recipient_restrictions", "", "Further restrictions applied to RCPT TO."),
        L("smtpd_client_restrictions", "", "Restrictions applied on connect; " NO_EFFECT "."),
        L("smtpd_helo_restrictions", "", "Restrictions applied to HELO/EHLO; " NO_EFFECT "."),
        L("smtpd_sender_restrictions", "", "Restrictions applied to MAIL FROM; " NO_EFFECT "."),
        L("smtpd_data_restrictions", "", "Restrictions applied to DATA; " NO_EFFECT "."),
        L("smtpd_end_of_data_restrictions", "", "Restrictions applied after the message; " NO_EFFECT "."),
        L("smtpd_etrn_restrictions", "", "Restrictions applied to ETRN; " NO_EFFECT "."),
        M("relay_recipient_maps", "", "Valid recipients in relay_domains; " NO_EFFECT "."),
        L("permit_mx_backup_networks", "", "Networks for permit_mx_backup; " NO_EFFECT "."),
        B("smtpd_delay_reject", "yes",
          "Delay rejects until RCPT TO; " NO_EFFECT " (mta-smtpd rejects only at RCPT TO)."),
        B("smtpd_helo_required", "no", "Require HELO or EHLO before MAIL FROM."),
        B("strict_rfc821_envelopes", "no",
          "Reject envelope addresses that are not strictly RFC 821 (<addr>)."),
        B("disable_vrfy_command", "no",
          "Turn VRFY off; " NO_EFFECT " (VRFY always answers 252 and discloses nothing)."),
        B("smtpd_reject_unlisted_recipient", "yes",
          "Reject RCPT TO for local recipients that are not known (accounts and aliases)."),
        B("smtpd_reject_unlisted_sender", "no", "Reject unknown local senders; " NO_EFFECT "."),
        B("smtpd_peername_lookup", "yes", "Look up the client's host name; " NO_EFFECT "."),
        L("smtpd_discard_ehlo_keywords", "", "EHLO keywords not to announce; " NO_EFFECT "."),
        I("unknown_local_recipient_reject_code", "550",
          "SMTP code for an unknown local recipient; " NO_EFFECT " (always 550)."),
        S("smtpd_forbid_bare_newline", "normalize",
          "Handling of bare LF in SMTP: normalize (accept), yes (reject), no."),
        L("local_recipient_maps", "proxy:unix:passwd.byname $alias_maps",
          "Valid local recipients; mta checks system accounts and alias_maps whenever this is not empty."),
        L("debug_peer_list", "", "Clients logged at higher verbosity; " NO_EFFECT "."),
        I("debug_peer_level", "2", "Verbosity increment for debug_peer_list; " NO_EFFECT "."),
        S("debugger_command", "", "Debugger started by -D; " NO_EFFECT "."),

        /* SMTP server limits */
        Z("message_size_limit", "10240000", "Largest message accepted, in bytes (0: no limit)."),
        I("smtpd_recipient_limit", "1000", "Most recipients accepted per message."),
        T("smtpd_timeout", "300s", 's', "SMTP server read and write timeout."),
        I("smtpd_hard_error_limit", "20", "Errors after which the SMTP server disconnects."),
        I("smtpd_soft_error_limit", "10", "Errors after which the SMTP server delays each reply."),
        T("smtpd_error_sleep_time", "1s", 's', "Delay per reply after smtpd_soft_error_limit errors."),
        I("smtpd_client_connection_count_limit", "50", "Simultaneous connections allowed from one client."),
        I("line_length_limit", "2048", "Longest SMTP or message line kept whole; longer lines are split."),
        Z("header_size_limit", "102400", "Largest message header, in bytes."),
        I("hopcount_limit", "50", "Most Received: headers before a message is bounced as looping."),
        T("in_flow_delay", "1s", 's', "Throttle for local submission; " NO_EFFECT "."),
        B("smtputf8_enable", "yes", "Announce and accept SMTPUTF8."),
        I("default_process_limit", "100", "Process limit; " NO_EFFECT " (units set limits)."),
        Z("queue_minfree", "0", "Free bytes the queue file system must keep; 0: only message_size_limit."),

        /* TLS */
        S("smtpd_tls_security_level", "",
          "SMTP server TLS: empty or none, may (offer STARTTLS), encrypt (require it)."),
        S("smtpd_tls_cert_file", "", "PEM certificate (chain) of the SMTP server."),
        S("smtpd_tls_key_file", "$smtpd_tls_cert_file", "PEM private key of the SMTP server."),
        S("smtpd_tls_chain_files", "",
          "Key and certificate chain files; " NO_EFFECT " (use smtpd_tls_cert_file)."),
        S("smtpd_tls_eccert_file", "", "ECDSA certificate; " NO_EFFECT "."),
        S("smtpd_tls_eckey_file", "$smtpd_tls_eccert_file", "ECDSA key; " NO_EFFECT "."),
        S("smtpd_tls_CAfile", "", "CA certificates for client certificates; " NO_EFFECT "."),
        S("smtpd_tls_CApath", "", "CA directory for client certificates; " NO_EFFECT "."),
        I("smtpd_tls_loglevel", "0", "SMTP server TLS logging level."),
        B("smtpd_tls_received_header", "no", "Record the TLS protocol and cipher in the Received: header."),
        B("smtpd_tls_auth_only", "no", "Offer AUTH only over TLS; " NO_EFFECT " (no AUTH)."),
        B("smtpd_use_tls", "no", "Obsolete form of smtpd_tls_security_level = may; " NO_EFFECT "."),
        B("smtpd_enforce_tls", "no", "Obsolete form of smtpd_tls_security_level = encrypt; " NO_EFFECT "."),
        B("smtpd_tls_wrappermode", "no", "TLS from connect (port 465); " NO_EFFECT "."),
        B("smtpd_tls_ask_ccert", "no", "Ask for a client certificate; " NO_EFFECT "."),
        B("smtpd_tls_req_ccert", "no", "Require a client certificate; " NO_EFFECT "."),
        S("smtpd_tls_session_cache_database", "", "TLS session cache; " NO_EFFECT "."),
        L("smtpd_tls_protocols", "!SSLv2, !SSLv3",
          "TLS protocols offered; " NO_EFFECT " (GnuTLS defaults)."),
        L("smtpd_tls_mandatory_protocols", "!SSLv2, !SSLv3", "TLS protocols when mandatory; " NO_EFFECT "."),
        S("smtpd_tls_ciphers", "medium", "Cipher grade; " NO_EFFECT "."),
        S("smtpd_tls_mandatory_ciphers", "medium", "Cipher grade when mandatory; " NO_EFFECT "."),
        L("smtpd_tls_exclude_ciphers", "", "Ciphers excluded; " NO_EFFECT "."),
        S("smtpd_tls_dh1024_param_file", "", "DH parameters; " NO_EFFECT "."),
        S("smtpd_tls_eecdh_grade", "auto", "ECDHE curve grade; " NO_EFFECT "."),
        S("smtp_tls_security_level", "", "SMTP client TLS: empty or none, may (opportunistic), encrypt."),
        I("smtp_tls_loglevel", "0", "SMTP client TLS logging level."),
        S("smtp_tls_CAfile", "", "CA certificates for server verification; " NO_EFFECT "."),
        S("smtp_tls_CApath", "", "CA directory for server verification; " NO_EFFECT "."),
        S("smtp_tls_cert_file", "", "SMTP client certificate; " NO_EFFECT "."),
        S("smtp_tls_key_file", "$smtp_tls_cert_file", "SMTP client key; " NO_EFFECT "."),
        S("smtp_tls_session_cache_database", "", "TLS session cache; " NO_EFFECT "."),
        L("smtp_tls_protocols", "!SSLv2, !SSLv3", "TLS protocols used; " NO_EFFECT " (GnuTLS defaults)."),
        L("smtp_tls_mandatory_protocols", "!SSLv2, !SSLv3", "TLS protocols when mandatory; " NO_EFFECT "."),
        S("smtp_tls_ciphers", "medium", "Cipher grade; " NO_EFFECT "."),
        S("smtp_tls_mandatory_ciphers", "medium", "Cipher grade when mandatory; " NO_EFFECT "."),
        M("smtp_tls_policy_maps", "", "Per-destination TLS policy; " NO_EFFECT "."),
        B("smtp_tls_note_starttls_offer", "no", "Log servers that offer STARTTLS; " NO_EFFECT "."),
        B("smtp_use_tls", "no", "Obsolete form of smtp_tls_security_level = may; " NO_EFFECT "."),
        B("smtp_enforce_tls", "no", "Obsolete form of smtp_tls_security_level = encrypt; " NO_EFFECT "."),
        B("smtp_tls_wrappermode", "no", "TLS from connect; " NO_EFFECT "."),
        B("tls_preempt_cipherlist", "no", "Server cipher preference; " NO_EFFECT "."),
        L("tls_ssl_options", "", "OpenSSL options; " NO_EFFECT "."),
        S("tls_random_source", "dev:/dev/urandom", "Random source; " NO_EFFECT "."),

        /* SASL, milters, content checks: not implemented */
        B("smtpd_sasl_auth_enable", "no", "SMTP AUTH in the server; " NO_EFFECT " (no SASL support)."),
        S("smtpd_sasl_type", "cyrus", "SASL plug-in type; " NO_EFFECT "."),
        S("smtpd_sasl_path", "smtpd", "SASL plug-in path; " NO_EFFECT "."),
        L("smtpd_sasl_security_options", "noanonymous", "SASL mechanism restrictions; " NO_EFFECT "."),
        S("smtpd_sasl_local_domain", "", "SASL realm; " NO_EFFECT "."),
        B("broken_sasl_auth_clients", "no", "Announce AUTH= for old clients; " NO_EFFECT "."),
        M("smtpd_sender_login_maps", "", "Sender to login mapping; " NO_EFFECT "."),
        B("smtp_sasl_auth_enable", "no", "SMTP AUTH in the client; " NO_EFFECT "."),
        M("smtp_sasl_password_maps", "", "Client SASL passwords; " NO_EFFECT "."),
        L("smtp_sasl_security_options", "noplaintext, noanonymous",
          "Client SASL restrictions; " NO_EFFECT "."),
        L("smtp_sasl_tls_security_options", "$smtp_sasl_security_options",
          "Client SASL restrictions over TLS; " NO_EFFECT "."),
        L("smtpd_milters", "", "Mail filters for SMTP mail; " NO_EFFECT " (no milter support)."),
        L("non_smtpd_milters", "", "Mail filters for local mail; " NO_EFFECT "."),
        S("milter_default_action", "tempfail", "Action when a milter fails; " NO_EFFECT "."),
        I("milter_protocol", "6", "Milter protocol version; " NO_EFFECT "."),
        M("header_checks", "", "Header pattern checks; " NO_EFFECT "."),
        M("body_checks", "", "Body pattern checks; " NO_EFFECT "."),
        M("mime_header_checks", "$header_checks", "MIME header checks; " NO_EFFECT "."),
        M("nested_header_checks", "$header_checks", "Attached message header checks; " NO_EFFECT "."),
        S("content_filter", "", "After-queue content filter; " NO_EFFECT "."),

        /* Aliases, virtual aliases, address rewriting */
        M("alias_maps", "hash:/etc/mta/aliases", "Alias maps for local recipients, searched in order."),
        M("alias_database", "hash:/etc/mta/aliases",
          "Alias files that mta-alias compiles when given no file."),
        L("virtual_alias_domains", "$virtual_alias_maps",
          "Virtual alias domains: every recipient must match virtual_alias_maps."),
        M("virtual_alias_maps", "",
          "Virtual alias maps (user@domain, user, @domain lookups), searched in order."),
        I("virtual_alias_expansion_limit", "1000",
          "Most addresses one alias expands into; " NO_EFFECT " (fixed at 1000)."),
        I("virtual_alias_recursion_limit", "1000",
          "Deepest nesting of alias expansion; " NO_EFFECT " (fixed at 20)."),
        S("recipient_delimiter", "", "Characters separating user and extension (user+ext)."),
        L("propagate_unmatched_extensions", "canonical, virtual",
          "Where an address extension is kept when the alias or map matched without it."),
        B("expand_owner_alias", "no",
          "Use the owner-name alias as the bounce address of list mail; " NO_EFFECT "."),
        B("owner_request_special", "yes",
          "Treat owner-name and name-request addresses specially; " NO_EFFECT "."),
        S("empty_address_recipient", "MAILER-DAEMON",
          "Recipient of mail with a null sender (<>) sent back."),
        B("append_at_myorigin", "yes", "Append @$myorigin to addresses without a domain."),
        B("append_dot_mydomain", "no", "Append .$mydomain to host.domain-less addresses; " NO_EFFECT "."),
        B("swap_bangpath", "yes", "Rewrite site!user to user@site; " NO_EFFECT "."),
        B("allow_percent_hack", "yes", "Rewrite user%domain to user@domain; " NO_EFFECT "."),
        M("canonical_maps", "", "Address rewriting maps; " NO_EFFECT "."),
        M("sender_canonical_maps", "", "Sender address rewriting; " NO_EFFECT "."),
        M("recipient_canonical_maps", "", "Recipient address rewriting; " NO_EFFECT "."),
        M("smtp_generic_maps", "", "Outgoing address rewriting; " NO_EFFECT "."),
        L("masquerade_domains", "", "Domains that hide their subdomains; " NO_EFFECT "."),
        L("masquerade_exceptions", "", "Users not masqueraded; " NO_EFFECT "."),
        M("recipient_bcc_maps", "", "Automatic BCC by recipient; " NO_EFFECT "."),
        M("sender_bcc_maps", "", "Automatic BCC by sender; " NO_EFFECT "."),
        S("always_bcc", "", "Address that receives a copy of every message; " NO_EFFECT "."),
        L("local_header_rewrite_clients", "permit_inet_interfaces",
          "Clients whose headers are rewritten; " NO_EFFECT "."),

        /* Virtual mailboxes and transports: not implemented */
        L("virtual_mailbox_domains", "$virtual_mailbox_maps", "Virtual mailbox domains; " NO_EFFECT "."),
        M("virtual_mailbox_maps", "", "Virtual mailbox maps; " NO_EFFECT "."),
        S("virtual_mailbox_base", "", "Virtual mailbox directory; " NO_EFFECT "."),
        S("virtual_transport", "virtual", "Transport for virtual mailbox domains; " NO_EFFECT "."),
        M("virtual_uid_maps", "", "Virtual mailbox owners; " NO_EFFECT "."),
        M("virtual_gid_maps", "", "Virtual mailbox groups; " NO_EFFECT "."),
        I("virtual_minimum_uid", "100", "Lowest virtual mailbox uid; " NO_EFFECT "."),
        M("transport_maps", "", "Per-destination transports; " NO_EFFECT "."),
        S("local_transport", "local:$myhostname",
          "Transport for mydestination; " NO_EFFECT " (always mta-local)."),
        S("default_transport", "smtp", "Transport for other domains; " NO_EFFECT " (always SMTP)."),
        S("relay_transport", "relay", "Transport for relay_domains; " NO_EFFECT "."),
        S("mailbox_transport", "", "Transport for local mailboxes; " NO_EFFECT "."),
        S("fallback_transport", "", "Transport for unknown local users; " NO_EFFECT "."),
        M("sender_dependent_relayhost_maps", "", "Relay host by sender; " NO_EFFECT "."),

        /* Local delivery */
        S("mail_spool_directory", "/var/mail", "Directory of the mbox files, one per user."),
        Z("mailbox_size_limit", "51200000",
          "Largest mbox file, in bytes (0: no limit); must not be below message_size_limit."),
        S("home_mailbox", "",
          "Mailbox relative to the home directory (\"Mailbox\" for mbox, \"Maildir/\" for Maildir); "
          "empty: mail_spool_directory."),
        S("mailbox_command", "",
          "Command that delivers to the mailbox, run as the recipient (envelope data only in its "
          "environment); empty: mta-local delivers itself."),
        L("forward_path", "$home/.forward",
          "Where .forward files are looked for ($home, $user expanded at delivery)."),
        L("allow_mail_to_commands", "alias, forward",
          "Sources allowed to deliver to |command: alias, forward, include."),
        L("allow_mail_to_files", "alias, forward",
          "Sources allowed to deliver to /file: alias, forward, include."),
        L("mailbox_delivery_lock", "fcntl, dotlock", "How an mbox is locked: fcntl, flock, dotlock."),
        B("biff", "no", "Notify comsat of new mail; " NO_EFFECT " (no comsat)."),
        S("luser_relay", "", "Destination for unknown local recipients; " NO_EFFECT "."),
        I("duplicate_filter_limit", "1000", "Addresses remembered when removing duplicate recipients."),
        S("command_execution_directory", "",
          "Working directory of |command deliveries; empty: the home directory."),
        L("export_environment", "TZ MAIL_CONFIG LANG", "Environment passed to commands; " NO_EFFECT "."),
        L("import_environment", "", "Environment kept from the caller; " NO_EFFECT "."),
        B("strict_mailbox_ownership", "yes", "Refuse an mbox not owned by its recipient."),
        T("command_time_limit", "1000s", 's', "Time limit of a |command delivery."),
        I("deliver_lock_attempts", "20", "Attempts to lock an mbox before the delivery is deferred."),
        T("deliver_lock_delay", "1s", 's', "Wait between attempts to lock an mbox."),
        T("stale_lock_time", "500s", 's', "Age after which an mbox dot-lock file is removed as stale."),

        /* Queue and SMTP client */
        S("queue_directory", "/var/spool/mta", "The mail queue."),
        T("maximal_queue_lifetime", "5d", 'd', "How long a message is retried before it is bounced."),
        T("bounce_queue_lifetime", "5d", 'd', "How long a bounce message is retried before it is dropped."),
        T("minimal_backoff_time", "300s", 's', "Shortest retry interval for deferred mail."),
        T("maximal_backoff_time", "4000s", 's', "Longest retry interval for deferred mail."),
        T("queue_run_delay", "300s", 's',
          "Retry interval for deferred mail; " NO_EFFECT " (mta-queue.timer sets it, 300s)."),
        T("delay_warning_time", "0h", 'h',
          "Send a delay warning after this time; " NO_EFFECT " (no delay warnings are sent)."),
        I("default_destination_concurrency_limit", "20", "Parallel deliveries to one destination."),
        I("default_destination_recipient_limit", "50", "Recipients per delivery to one destination."),
        I("smtp_destination_concurrency_limit", "$default_destination_concurrency_limit",
          "Parallel SMTP deliveries to one destination."),
        I("smtp_destination_recipient_limit", "$default_destination_recipient_limit",
          "Recipients per SMTP transaction."),
        I("local_destination_concurrency_limit", "2",
          "Parallel local deliveries to one recipient; " NO_EFFECT "."),
        I("local_destination_recipient_limit", "1", "Recipients per local delivery; " NO_EFFECT "."),
        T("smtp_connect_timeout", "30s", 's', "SMTP client connect timeout."),
        T("smtp_helo_timeout", "300s", 's', "SMTP client timeout for the greeting and EHLO reply."),
        T("smtp_mail_timeout", "300s", 's', "SMTP client timeout for the MAIL FROM reply."),
        T("smtp_rcpt_timeout", "300s", 's', "SMTP client timeout for the RCPT TO reply."),
        T("smtp_data_init_timeout", "120s", 's', "SMTP client timeout for the DATA reply."),
        T("smtp_data_xfer_timeout", "180s", 's', "SMTP client timeout while sending the message."),
        T("smtp_data_done_timeout", "600s", 's', "SMTP client timeout for the reply to the final dot."),
        T("smtp_quit_timeout", "300s", 's', "SMTP client timeout for the QUIT reply."),
        S("smtp_helo_name", "$myhostname", "Name the SMTP client sends in EHLO."),
        S("smtp_bind_address", "", "Source IPv4 address of the SMTP client; " NO_EFFECT "."),
        S("smtp_bind_address6", "", "Source IPv6 address of the SMTP client; " NO_EFFECT "."),
        I("smtp_mx_address_limit", "5", "Most MX addresses tried per delivery."),
        I("smtp_mx_session_limit", "2", "Most SMTP sessions per delivery; " NO_EFFECT "."),
        L("smtp_host_lookup", "dns",
          "How the SMTP client finds hosts; " NO_EFFECT " (DNS, then /etc/hosts)."),
        S("smtp_dns_support_level", "", "DNS features of the SMTP client; " NO_EFFECT "."),
        B("disable_dns_lookups", "no", "Obsolete: no DNS in the SMTP client; " NO_EFFECT "."),
        B("soft_bounce", "no", "Turn hard bounces into deferrals; " NO_EFFECT "."),
        L("notify_classes", "resource, software",
          "Problems reported to the postmaster; " NO_EFFECT "."),
        S("2bounce_notice_recipient", "postmaster",
          "Recipient of undeliverable bounce (double bounce) notices; " NO_EFFECT "."),
        S("bounce_notice_recipient", "postmaster",
          "Recipient of bounce notices (notify_classes bounce); " NO_EFFECT "."),
        S("delay_notice_recipient", "postmaster",
          "Recipient of delay notices (notify_classes delay); " NO_EFFECT "."),
        S("error_notice_recipient", "postmaster",
          "Recipient of error notices (notify_classes protocol...); " NO_EFFECT "."),
        Z("bounce_size_limit", "50000",
          "Most bytes of the original message returned in a bounce; " NO_EFFECT "."),

        /* Files and programs */
        S("config_directory", MTA_DEFAULT_CONFIG_DIR,
          "Informational: the directory of main.cf is chosen with -c or MTA_CONFIG_DIR."),
        S("command_directory", MTA_SBINDIR,
          "Informational: where the administrator commands are installed."),
        S("daemon_directory", MTA_LIBEXECDIR, "Informational: where the services are installed."),
        S("data_directory", "/var/lib/mta", "Writable data directory; " NO_EFFECT "."),
        S("meta_directory", MTA_DEFAULT_CONFIG_DIR, "Postfix meta files; " NO_EFFECT "."),
        S("shlib_directory", "no", "Postfix shared libraries; " NO_EFFECT "."),
        S("readme_directory", "no", "Documentation; " NO_EFFECT "."),
        S("html_directory", "no", "Documentation; " NO_EFFECT "."),
        S("manpage_directory", "/usr/share/man", "Manual pages; " NO_EFFECT "."),
        S("sample_directory", MTA_DEFAULT_CONFIG_DIR, "Sample files; " NO_EFFECT "."),
        S("sendmail_path", MTA_SBINDIR "/sendmail", "Path of the sendmail command; " NO_EFFECT "."),
        S("newaliases_path", MTA_BINDIR "/newaliases", "Path of the newaliases command; " NO_EFFECT "."),
        S("mailq_path", MTA_BINDIR "/mailq", "Path of the mailq command; " NO_EFFECT "."),
        S("setgid_group", "postdrop",
          "Group of set-gid Postfix commands; " NO_EFFECT " (nothing is set-gid)."),
        S("maillog_file", "", "Log file; " NO_EFFECT " (logs go to the journal)."),
        L("authorized_submit_users", "static:anyone", "Users allowed to submit mail; " NO_EFFECT "."),
        L("authorized_mailq_users", "static:anyone", "Users allowed to list the queue; " NO_EFFECT "."),
        L("authorized_flush_users", "static:anyone", "Users allowed to flush the queue; " NO_EFFECT "."),
};

const size_t params_table_size = ELEMENTSOF(params_table);

static const ParamInfo **sorted_index;
static pthread_once_t sorted_once = PTHREAD_ONCE_INIT;

static int cmp_info(const void *a, const void *b) {
        return strcmp((*(const ParamInfo * const *) a)->name, (*(const ParamInfo * const *) b)->name);
}

static void build_index(void) {
        /* Allocated once for the life of the process; if that fails, params_find() falls back to a
         * linear scan, so the table never appears empty. */
        const ParamInfo **idx = malloc(sizeof(ParamInfo *) * params_table_size);
        if (!idx)
                return;
        for (size_t i = 0; i < params_table_size; i++)
                idx[i] = &params_table[i];
        qsort(idx, params_table_size, sizeof(ParamInfo *), cmp_info);
        sorted_index = idx;
}

const ParamInfo *params_find(const char *name) {
        if (!name)
                return NULL;
        (void) pthread_once(&sorted_once, build_index);
        if (!sorted_index) {
                for (size_t i = 0; i < params_table_size; i++)
                        if (streq(params_table[i].name, name))
                                return &params_table[i];
                return NULL;
        }
        size_t lo = 0, hi = params_table_size;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, sorted_index[mid]->name);
                if (c == 0)
                        return sorted_index[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

static char default_hostname[256];
static char default_domain[256];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void compute_host(void) {
        char h[256] = "";

        if (gethostname(h, sizeof h - 1) < 0 || !*h)
                strcpy(h, "localhost");
        h[sizeof h - 1] = 0;
        /* Postfix: a name without a dot is not fully qualified; it gets ".$mydomain", whose own
         * default is then "localdomain". */
        if (!strchr(h, '.'))
                (void) snprintf(default_hostname, sizeof default_hostname, "%s.localdomain", h);
        else
                (void) snprintf(default_hostname, sizeof default_hostname, "%s", h);

        const char *dot = strchr(default_hostname, '.');
        if (dot && dot[1])
                (void) snprintf(default_domain, sizeof default_domain, "%s", dot + 1);
        else
                strcpy(default_domain, "localdomain");
}

const char *params_default(const char *name) {
        const ParamInfo *p = params_find(name);
        if (!p)
                return NULL;
        if (p->default_value)
                return p->default_value;
        (void) pthread_once(&host_once, compute_host);
        if (streq(p->name, "myhostname"))
                return default_hostname;
        if (streq(p->name, "mydomain"))
                return default_domain;
        return "";
}

static size_t levenshtein(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[128];

        /* Parameter names are short; anything longer than the row is no useful suggestion. */
        if (lb >= ELEMENTSOF(row) || la >= ELEMENTSOF(row))
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                        size_t best = diag + cost;
                        if (up + 1 < best)
                                best = up + 1;
                        if (row[j - 1] + 1 < best)
                                best = row[j - 1] + 1;
                        row[j] = best;
                        diag = up;
                }
        }
        return row[lb];
}

static bool affix_variant(const char *unknown, const char *known) {
        size_t lu = strlen(unknown), lk = strlen(known);

        /* "mynetwork" for "mynetworks", "tls_cert_file" for "smtpd_tls_cert_file": the unknown name
         * is a substantial piece of the known one. */
        if (lu < 6 || lu >= lk)
                return false;
        return strncmp(known, unknown, lu) == 0 || streq(known + lk - lu, unknown);
}

const char *params_suggest(const char *name) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX, len;
        char lower[128];

        if (isempty(name))
                return NULL;
        len = strlen(name);
        if (len >= sizeof lower)
                return NULL;
        for (size_t i = 0; i <= len; i++)
                lower[i] = (char) ((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);

        /* Case-only differences ("smtpd_tls_cafile") are the closest of all. */
        for (size_t i = 0; i < params_table_size; i++)
                if (strcaseeq(params_table[i].name, name) && !streq(params_table[i].name, name))
                        return params_table[i].name;

        size_t limit = len <= 4 ? 1 : 2;
        for (size_t i = 0; i < params_table_size; i++) {
                const char *k = params_table[i].name;
                size_t d = levenshtein(lower, k);
                if (d <= limit && d < best_d) {
                        best = k;
                        best_d = d;
                }
        }
        if (best)
                return best;

        /* No near spelling: try a name the unknown one is a prefix or suffix of; prefer the
         * shortest such name, as it adds the least. */
        for (size_t i = 0; i < params_table_size; i++) {
                const char *k = params_table[i].name;
                if (affix_variant(lower, k) && (!best || strlen(k) < strlen(best)))
                        best = k;
        }
        return best;
}
