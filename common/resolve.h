/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Address classes and recipient expansion, done in one place for the receiver's recipient checks
 * and the queue runner's routing, as Postfix's trivial-rewrite does:
 *
 *   - an address without a domain gets myorigin;
 *   - a domain in mydestination (or equal to an IP literal of ours) is local: the local part,
 *     less its recipient_delimiter extension, is looked up in alias_maps (user+ext first, then
 *     user) and expanded recursively; what is left must be a system account (getpwnam);
 *   - a domain in virtual_alias_domains is rewritten through virtual_alias_maps (user+ext@domain,
 *     user@domain, @domain, in that order) and the results are routed again;
 *   - every other domain is remote.
 *
 * Expansion is recursive with a depth limit (20) and loop detection (an address met again on its
 * own chain is delivered as itself, as Postfix does for "user: user, other"); a map error is a
 * temporary failure of that recipient, never "unknown". Which alias targets may run commands or
 * write files follows allow_mail_to_commands and allow_mail_to_files ("alias", "forward",
 * "include").
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/macro.h"

typedef struct Resolver Resolver;

int resolver_new(const Config *c, Resolver **ret);
Resolver *resolver_free(Resolver *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Resolver *, resolver_free);

typedef enum DomainClass {
        DOMAIN_LOCAL,          /* mydestination */
        DOMAIN_VIRTUAL_ALIAS,  /* virtual_alias_domains */
        DOMAIN_REMOTE,
} DomainClass;

/* domain is lower case; "" means local. Negative on a map error. */
int resolver_classify_domain(Resolver *r, const char *domain, DomainClass *ret);

/* Adds "@myorigin" to an address without a domain; otherwise copies it. */
int resolver_qualify(Resolver *r, const char *addr, char **ret);

typedef enum RecipientCheck {
        RECIPIENT_LOCAL_OK,
        RECIPIENT_LOCAL_UNKNOWN,     /* 550 5.1.1 ... User unknown in local recipient table */
        RECIPIENT_VIRTUAL_OK,
        RECIPIENT_VIRTUAL_UNKNOWN,   /* 550 5.1.1 ... User unknown in virtual alias table */
        RECIPIENT_REMOTE,            /* relay policy decides */
} RecipientCheck;

/* The receiver's check of one RCPT TO address. Negative on a map error (reply 451 4.3.0). */
int resolver_check_recipient(Resolver *r, const char *addr, RecipientCheck *ret);

typedef enum DeliveryKind {
        DELIVERY_MAILBOX,     /* user's mbox in mail_spool_directory */
        DELIVERY_FILE,        /* append to target, as user */
        DELIVERY_COMMAND,     /* run target with /bin/sh -c, as user; envelope only in the environment */
        DELIVERY_REMOTE,      /* address to a remote domain */
        DELIVERY_FAILED,      /* status/reason say why */
} DeliveryKind;

typedef enum MailStatus {
        MAIL_OK,
        MAIL_TEMPFAIL,
        MAIL_PERMFAIL,
} MailStatus;

typedef struct Delivery {
        DeliveryKind kind;
        char *address;        /* final address: user@domain for MAILBOX and REMOTE */
        char *user;           /* MAILBOX: the account; FILE/COMMAND: whose rights the delivery runs with */
        char *extension;      /* recipient_delimiter extension, or NULL */
        char *target;         /* FILE: path; COMMAND: command line */
        MailStatus status;    /* FAILED: TEMPFAIL or PERMFAIL */
        char *dsn;            /* FAILED: enhanced status code, e.g. "5.1.1" */
        char *reason;         /* FAILED: text */
} Delivery;

typedef struct DeliveryList {
        Delivery *items;
        size_t n;
} DeliveryList;

void delivery_list_done(DeliveryList *l);

/* Expands one envelope recipient into the deliveries it stands for. */
int resolver_expand(Resolver *r, const char *rcpt, DeliveryList *ret);

/* Expands targets that a user's ~/.forward gave (kind of origin "forward"), for user. */
int resolver_expand_forward(Resolver *r, const char *user, const char *forward_text, DeliveryList *ret);
