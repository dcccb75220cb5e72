/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/address.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/queue.h"
#include "common/resolve.h"
#include "common/strv.h"
#include "services/queue/bounce.h"
#include "services/queue/route.h"
#include "services/queue/runner.h"
#include "services/queue/smtp-client.h"

#define FORWARD_DEPTH_MAX 5
#define STALE_INCOMING_SEC 3600
#define DONE_FILE_MAX (16 * 1024 * 1024)

typedef struct Parked Parked;

struct Runner {
        const Config *config;
        Resolver *resolver;
        LocalAgent *agent;
        const char *queue_dir;
        const char *myhostname;
        SmtpClientConfig smtp;
        SmtpCache *cache;
        char *relay_host;
        bool relay_mx;
        unsigned relay_port;
        uint64_t min_backoff, max_backoff, max_lifetime, bounce_lifetime;
        unsigned rcpt_limit;
        bool flush;
        char **ids;
        char **seen;              /* ids handled in this run */
        Parked *batch[LOCAL_AGENT_PIPELINE_MAX];   /* messages waiting to go into one mailbox */
        size_t n_batch;
};

/* One expanded delivery's result in this pass. */
typedef struct Outcome {
        size_t rcpt;
        char *key;                /* "KIND\tTARGET" (escaped), NULL when not to be recorded */
        char *address;
        MailStatus status;
        char dsn[16];
        char *relay;
        char *remote_mta;
        const char *diag_type;
        char *diagnostic;
        char *text;
} Outcome;

typedef struct RemoteItem {
        size_t rcpt;
        char *address;
        char *key;
        char *dest;               /* grouping key: relayhost or domain */
} RemoteItem;

typedef struct Pass {
        Runner *runner;
        QueueFile *f;
        int content_fd;           /* read-only fd for mta-local */
        char **done;              /* "IDX\tKEY" and "IDX\t!KEY" lines */
        size_t done_written;      /* how many of them are in done/ID */
        int done_fd;
        bool done_dirty;
        bool expired;
        Outcome *outcomes;
        size_t n_outcomes;
        RemoteItem *remote;
        size_t n_remote;
        bool failed_io;           /* could not record: leave everything pending */
} Pass;

/*
 * A message whose one pending recipient comes down to one mailbox delivery waits here, queue file
 * locked, until the batch is full, a message for another mailbox comes, or the scan ends. Then all
 * requests go to mta-local at once, which appends them under one lock and one fsync (group commit:
 * the disk syncs only about 2,400 times a second), and each message is finished as it would have
 * been alone.
 */
struct Parked {
        Pass pass;
        QueueFile *f;
        DeliveryList dl;          /* dl.items[0] is the delivery */
        size_t rcpt;
        char *key;
};

static void pass_done(Pass *p);

static void parked_free(Parked *b) {
        pass_done(&b->pass);
        queue_file_free(b->f);
        delivery_list_done(&b->dl);
        free(b->key);
        free(b);
}

uint64_t runner_backoff(uint64_t min, uint64_t max, unsigned attempts) {
        uint64_t b = min > 0 ? min : 1;
        for (unsigned i = 0; i < attempts && b < max; i++)
                b *= 2;
        return b < max ? b : max;
}

char *runner_escape_field(const char *s) {
        size_t n = strlen(s);
        char *o = malloc(n * 2 + 1), *p = o;
        if (!o)
                return NULL;
        for (; *s; s++) {
                if (*s == '\\' || *s == '\t' || *s == '\n') {
                        *p++ = '\\';
                        *p++ = *s == '\\' ? '\\' : *s == '\t' ? 't' : 'n';
                } else
                        *p++ = *s;
        }
        *p = 0;
        return o;
}

static int get_seconds(const Config *c, const char *name, uint64_t def, uint64_t *ret) {
        uint64_t v;
        int r = config_get_time(c, name, &v);
        if (r < 0) {
                if (config_get(c, name))
                        return r;
                v = def;
        }
        *ret = v;
        return 0;
}

int runner_new(const Config *c, LocalAgent *agent, const RunnerOptions *o, Runner **ret, char **ret_error) {
        _cleanup_(runner_freep) Runner *r = calloc(1, sizeof *r);
        int k;

        if (!r) {
                local_agent_free(agent);
                return -ENOMEM;
        }
        r->config = c;
        r->agent = agent;
        r->queue_dir = config_get(c, "queue_directory");
        r->myhostname = config_get(c, "myhostname");
        r->flush = o->flush;

#define FAIL(code, ...)                                                 \
        do {                                                            \
                if (ret_error && asprintf(ret_error, __VA_ARGS__) < 0)  \
                        *ret_error = NULL;                              \
                return code;                                            \
        } while (0)

        if (isempty(r->queue_dir))
                FAIL(-EINVAL, "queue_directory is empty");
        if (o->ids) {
                r->ids = calloc(strv_length(o->ids) + 1, sizeof(char *));
                if (!r->ids)
                        return -ENOMEM;
                for (size_t i = 0; o->ids[i]; i++)
                        if (!(r->ids[i] = strdup(o->ids[i])))
                                return -ENOMEM;
        }

        static const struct {
                const char *name;
                uint64_t def;
                size_t offset;
        } times[] = {
                { "smtp_connect_timeout", 30, offsetof(SmtpClientConfig, connect_timeout) },
                { "smtp_helo_timeout", 300, offsetof(SmtpClientConfig, helo_timeout) },
                { "smtp_mail_timeout", 300, offsetof(SmtpClientConfig, mail_timeout) },
                { "smtp_rcpt_timeout", 300, offsetof(SmtpClientConfig, rcpt_timeout) },
                { "smtp_data_init_timeout", 120, offsetof(SmtpClientConfig, data_init_timeout) },
                { "smtp_data_xfer_timeout", 180, offsetof(SmtpClientConfig, data_xfer_timeout) },
                { "smtp_data_done_timeout", 600, offsetof(SmtpClientConfig, data_done_timeout) },
        };
        for (size_t i = 0; i < ELEMENTSOF(times); i++) {
                uint64_t v;
                if (get_seconds(c, times[i].name, times[i].def, &v) < 0)
                        FAIL(-EINVAL, "%s: invalid time value", times[i].name);
                *(unsigned *) ((char *) &r->smtp + times[i].offset) = (unsigned) (v > 86400 ? 86400 : v);
        }
        r->smtp.helo_name = r->myhostname;
        const char *lvl = config_get(c, "smtp_tls_security_level");
        if (tls_level_from_string(lvl, &r->smtp.tls) < 0)
                FAIL(-EINVAL, "smtp_tls_security_level: unknown level \"%s\"", lvl);

        if (get_seconds(c, "minimal_backoff_time", 300, &r->min_backoff) < 0 ||
            get_seconds(c, "maximal_backoff_time", 4000, &r->max_backoff) < 0 ||
            get_seconds(c, "maximal_queue_lifetime", 5 * 86400, &r->max_lifetime) < 0 ||
            get_seconds(c, "bounce_queue_lifetime", 5 * 86400, &r->bounce_lifetime) < 0)
                FAIL(-EINVAL, "invalid backoff or queue lifetime value");
        if (r->max_backoff < r->min_backoff)
                r->max_backoff = r->min_backoff;

        int64_t limit = 50;
        if (config_get(c, "smtp_destination_recipient_limit") &&
            config_get_int(c, "smtp_destination_recipient_limit", &limit) < 0)
                FAIL(-EINVAL, "smtp_destination_recipient_limit: not a number");
        r->rcpt_limit = limit > 0 && limit < 100000 ? (unsigned) limit : 50;

        const char *relay = config_get(c, "relayhost");
        if (!isempty(relay)) {
                k = route_parse_relayhost(relay, &r->relay_host, &r->relay_mx, &r->relay_port);
                if (k < 0)
                        FAIL(k, "relayhost: cannot parse \"%s\"", relay);
        }

        k = smtp_cache_new(&r->cache);
        if (k < 0)
                return k;
        k = resolver_new(c, &r->resolver);
        if (k < 0)
                FAIL(k, "cannot set up address resolution: %s", strerror(-k));
#undef FAIL
        *ret = TAKE_PTR(r);
        return 0;
}

Runner *runner_free(Runner *r) {
        if (!r)
                return NULL;
        smtp_cache_free(r->cache);
        resolver_free(r->resolver);
        local_agent_free(r->agent);
        free(r->relay_host);
        strv_free(r->ids);
        strv_free(r->seen);
        /* Parked messages not sent yet (the run failed): untouched, they stay queued. */
        for (size_t i = 0; i < r->n_batch; i++)
                parked_free(r->batch[i]);
        free(r);
        return NULL;
}

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int path_of(const Runner *r, QueueDir d, const char *name, char **ret) {
        if (asprintf(ret, "%s/%s/%s", r->queue_dir, queue_dir_name(d), name) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- done/ID ---- */

static int done_load(Pass *p) {
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        r = path_of(p->runner, QUEUE_DONE_LOG, p->f->id, &path);
        if (r < 0)
                return r;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (st.st_size > DONE_FILE_MAX)
                return -EFBIG;
        _cleanup_free_ char *buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = read(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        /* A line cut short by a crash has no LF: it is ignored, and that delivery may repeat. */
        char *s = buf;
        for (char *nl; (nl = strchr(s, '\n')); s = nl + 1) {
                *nl = 0;
                if (*s && strv_extend(&p->done, s) < 0)
                        return -ENOMEM;
        }
        p->done_written = strv_length(p->done);
        return 0;
}

/* 0: not done, 1: delivered, 2: bounced. */
static int done_state(Pass *p, size_t rcpt, const char *key) {
        char prefix[32];
        int n = snprintf(prefix, sizeof prefix, "%zu\t", rcpt);
        for (char **i = p->done; i && *i; i++) {
                if (strncmp(*i, prefix, (size_t) n) != 0)
                        continue;
                const char *rest = *i + n;
                if (streq(rest, key))
                        return 1;
                if (rest[0] == '!' && streq(rest + 1, key))
                        return 2;
        }
        return 0;
}

/* Whether any recipient of this message already had this local delivery (an alias list and a
 * direct recipient that name the same mailbox): the mailbox gets the message once, as with Postfix's
 * duplicate elimination. */
static bool done_for_any(Pass *p, const char *key) {
        size_t kl = strlen(key);
        for (char **i = p->done; i && *i; i++) {
                const char *tab = strchr(*i, '\t');
                if (tab && strlen(tab + 1) == kl && memcmp(tab + 1, key, kl) == 0)
                        return true;
        }
        return false;
}

/*
 * A record is written to done/ID only when it can matter: before the next delivery of the same
 * message starts, and when the message stays queued. A message with one delivery, the common case,
 * then never creates the file (measured: a directory entry created and removed per message was a
 * tenth of the runner's time). Until it is written, a crash repeats that delivery, as a crash
 * between the delivery and its record always could; nothing is lost either way.
 */
static int done_flush(Pass *p) {
        size_t n = strv_length(p->done);
        int r;

        if (p->done_written >= n)
                return 0;
        if (p->done_fd < 0) {
                _cleanup_free_ char *path = NULL;
                r = path_of(p->runner, QUEUE_DONE_LOG, p->f->id, &path);
                if (r < 0)
                        return r;
                p->done_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (p->done_fd < 0)
                        return negative_errno();
        }
        for (; p->done_written < n; p->done_written++) {
                const char *line = p->done[p->done_written];
                struct iovec iov[2] = {
                        { .iov_base = (char *) line, .iov_len = strlen(line) },
                        { .iov_base = (char *) "\n", .iov_len = 1 },
                };
                ssize_t k = writev(p->done_fd, iov, 2);
                if (k != (ssize_t) (iov[0].iov_len + 1))
                        return k < 0 ? negative_errno() : -EIO;
                p->done_dirty = true;
        }
        return 0;
}

/* Called before each delivery: what earlier deliveries of this message did goes on record first. */
static void done_flush_before_delivery(Pass *p) {
        int r = done_flush(p);
        if (r < 0) {
                log_error_errno(r, "%s: cannot record delivery in done/: %m", p->f->id);
                p->failed_io = true;
        }
}

static int done_append(Pass *p, size_t rcpt, const char *key, bool bounced) {
        _cleanup_free_ char *line = NULL;

        if (asprintf(&line, "%zu\t%s%s", rcpt, bounced ? "!" : "", key) < 0)
                return -ENOMEM;
        return strv_extend(&p->done, line);
}

/* ---- outcomes and logging ---- */

static const char *status_word(const Pass *p, MailStatus s) {
        switch (s) {
        case MAIL_OK:
                return "sent";
        case MAIL_TEMPFAIL:
                return p->expired ? "bounced" : "deferred";
        default:
                return "bounced";
        }
}

static int outcome_add(Pass *p, size_t rcpt, const char *key, const char *address, MailStatus status,
                       const char *dsn, const char *relay, const char *remote_mta, const char *diag_type,
                       const char *diagnostic, const char *text) {
        Outcome *n = realloc(p->outcomes, (p->n_outcomes + 1) * sizeof *n);
        if (!n)
                return -ENOMEM;
        p->outcomes = n;
        Outcome *o = &n[p->n_outcomes];
        *o = (Outcome) {
                .rcpt = rcpt,
                .status = status,
                .diag_type = diag_type,
        };
        snprintf(o->dsn, sizeof o->dsn, "%s", dsn ? dsn : status == MAIL_OK ? "2.0.0" : status == MAIL_TEMPFAIL ? "4.0.0" : "5.0.0");
        o->key = key ? strdup(key) : NULL;
        o->address = strdup(strempty(address));
        o->relay = strdup(strempty(relay));
        o->remote_mta = remote_mta ? strdup(remote_mta) : NULL;
        o->diagnostic = diagnostic ? strdup(diagnostic) : NULL;
        o->text = strdup(strempty(text));
        p->n_outcomes++;
        if ((key && !o->key) || !o->address || !o->relay || !o->text)
                return -ENOMEM;

        const QueueFile *f = p->f;
        char delay[32], *orig = f->recipients[rcpt].address;
        snprintf(delay, sizeof delay, "%.1f", now_sec() - (double) f->arrival);
        const char *word = status_word(p, status);
        LogField fields[] = {
                { "MTA_QUEUE_ID", f->id },
                { "MTA_RECIPIENT", o->address },
                { "MTA_SENDER", f->sender },
                { "MTA_RELAY", o->relay },
                { "MTA_DSN", o->dsn },
                { "MTA_STATUS", word },
                { "MTA_DELAY", delay },
        };
        bool show_orig = !strcaseeq(orig, o->address);
        log_event(status == MAIL_OK ? LOG_INFO : LOG_NOTICE, fields, ELEMENTSOF(fields),
                  "%s: to=<%s>%s%s%s, relay=%s, delay=%s, dsn=%s, status=%s (%s)", f->id, o->address,
                  show_orig ? ", orig_to=<" : "", show_orig ? orig : "", show_orig ? ">" : "", o->relay, delay,
                  o->dsn, word, o->text);
        return 0;
}

static int record_success(Pass *p, size_t rcpt, const char *key) {
        int r = done_append(p, rcpt, key, false);
        if (r < 0) {
                log_error_errno(r, "%s: cannot record delivery in done/: %m", p->f->id);
                p->failed_io = true;
        }
        return 0;
}

/* ---- local delivery ---- */

static const char *kind_name(DeliveryKind k) {
        switch (k) {
        case DELIVERY_MAILBOX:
                return "mailbox";
        case DELIVERY_FILE:
                return "file";
        case DELIVERY_COMMAND:
                return "command";
        case DELIVERY_REMOTE:
                return "remote";
        default:
                return "failed";
        }
}

static char *delivery_key(const Delivery *d) {
        _cleanup_free_ char *t = NULL;
        char *key = NULL;

        switch (d->kind) {
        case DELIVERY_MAILBOX:
                t = runner_escape_field(strempty(d->user));
                break;
        case DELIVERY_FILE:
        case DELIVERY_COMMAND: {
                _cleanup_free_ char *raw = NULL;
                if (asprintf(&raw, "%s:%s", strempty(d->user), strempty(d->target)) < 0)
                        return NULL;
                t = runner_escape_field(raw);
                break;
        }
        default:
                t = runner_escape_field(strempty(d->address));
        }
        if (!t || asprintf(&key, "%s\t%s", kind_name(d->kind), t) < 0)
                return NULL;
        return key;
}

static int handle_delivery(Pass *p, size_t rcpt, const Delivery *d, unsigned depth, char **chain);

#define TURN_BUCKETS 64

/* Returns a locked fd (or -EBADF when locking is not possible, then there is no turn taking). */
static int mailbox_turn(Runner *r, const Delivery *d) {
        char path[PATH_MAX];
        uint32_t h = 2166136261u;

        if (d->kind != DELIVERY_MAILBOX || isempty(d->user))
                return -EBADF;
        for (const unsigned char *c = (const unsigned char *) d->user; *c; c++)
                h = (h ^ *c) * 16777619u;
        if (snprintf(path, sizeof path, "%s/.turns", r->queue_dir) >= (int) sizeof path)
                return -EBADF;
        (void) mkdir(path, 0700);
        if (snprintf(path, sizeof path, "%s/.turns/%02u", r->queue_dir, h % TURN_BUCKETS) >= (int) sizeof path)
                return -EBADF;
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -EBADF;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return safe_close(fd);
        return fd;
}

static LocalRequest local_request_for(Pass *p, size_t rcpt, const Delivery *d, unsigned depth, char **chain) {
        QueueFile *f = p->f;
        bool noforward = d->kind != DELIVERY_MAILBOX || depth >= FORWARD_DEPTH_MAX ||
                         strv_contains(chain, strempty(d->user));
        return (LocalRequest) {
                .kind = kind_name(d->kind),
                .user = d->user,
                .target = d->kind == DELIVERY_MAILBOX ? NULL : d->target,
                .sender = f->sender,
                .recipient = d->address,
                .original = f->recipients[rcpt].address,
                .extension = d->extension,
                .queue_id = f->id,
                .arrival = f->arrival,
                .offset = (uint64_t) f->content_offset,
                .size = f->content_size,
                .flags = noforward ? "noforward" : NULL,
        };
}

static int deliver_local(Pass *p, size_t rcpt, const Delivery *d, const char *key, unsigned depth, char **chain);

/* What follows mta-local's answer for one delivery: a ~/.forward to expand, or the outcome. */
static int local_result_apply(Pass *p, size_t rcpt, const Delivery *d, const char *key, unsigned depth,
                              char **chain, LocalResult *res) {
        Runner *r = p->runner;
        int k = 0;

        if (res->forward) {
                DeliveryList dl = {};
                k = resolver_expand_forward(r->resolver, d->user, strempty(res->forward_text), &dl);
                local_result_done(res);
                if (k < 0)
                        return outcome_add(p, rcpt, NULL, d->address, MAIL_TEMPFAIL, "4.3.0", "local", NULL,
                                           "x-unix", NULL, "cannot expand .forward file");
                /* The users whose .forward led here: their mailbox is delivered without reading it again. */
                _cleanup_strv_free_ char **c = NULL;
                for (char **i = chain; i && *i; i++)
                        if (strv_extend(&c, *i) < 0)
                                k = -ENOMEM;
                if (k >= 0 && strv_extend(&c, strempty(d->user)) < 0)
                        k = -ENOMEM;
                for (size_t i = 0; i < dl.n && k >= 0; i++)
                        k = handle_delivery(p, rcpt, &dl.items[i], depth + 1, c);
                /* A .forward that names nothing usable must not swallow the mail: it goes to the
                 * mailbox, without reading the file again. */
                if (k >= 0 && dl.n == 0)
                        k = deliver_local(p, rcpt, d, key, depth + 1, c);
                delivery_list_done(&dl);
                return k;
        }

        const char *address = d->address ? d->address : d->target;
        if (res->status == MAIL_OK)
                record_success(p, rcpt, key);
        k = outcome_add(p, rcpt, res->status == MAIL_OK ? NULL : key, address ? address : d->address,
                        res->status, res->dsn, "local", NULL, "x-unix", res->text, res->text);
        local_result_done(res);
        return k;
}

static int deliver_local(Pass *p, size_t rcpt, const Delivery *d, const char *key, unsigned depth, char **chain) {
        Runner *r = p->runner;
        LocalRequest req = local_request_for(p, rcpt, d, depth, chain);
        LocalResult res = {};
        int k;

        /* Parallel workers take turns per mailbox: a blocking flock here wakes the next one at once,
         * where mta-local's own mailbox lock would make it poll. */
        done_flush_before_delivery(p);
        _cleanup_close_ int turn = mailbox_turn(r, d);
        k = local_agent_deliver(r->agent, &req, p->content_fd, &res);
        turn = safe_close(turn);
        if (k < 0)
                return k;
        return local_result_apply(p, rcpt, d, key, depth, chain, &res);
}

static int handle_delivery(Pass *p, size_t rcpt, const Delivery *d, unsigned depth, char **chain) {
        _cleanup_free_ char *key = delivery_key(d);
        if (!key)
                return -ENOMEM;

        if (done_state(p, rcpt, key) != 0)
                return 0;

        switch (d->kind) {
        case DELIVERY_MAILBOX:
        case DELIVERY_FILE:
        case DELIVERY_COMMAND:
                if (done_for_any(p, key))
                        return record_success(p, rcpt, key);
                return deliver_local(p, rcpt, d, key, depth, chain);
        case DELIVERY_REMOTE: {
                /* Identical remote deliveries in one pass go once. */
                for (size_t i = 0; i < p->n_remote; i++)
                        if (p->remote[i].rcpt == rcpt && streq(p->remote[i].key, key))
                                return 0;
                _cleanup_free_ char *local = NULL, *domain = NULL;
                int k = address_split(d->address, &local, &domain);
                /* Nothing that could end an SMTP command line may reach one. */
                if (k >= 0 && string_has_cc(d->address))
                        k = -EINVAL;
                if (k < 0)
                        return outcome_add(p, rcpt, key, d->address, MAIL_PERMFAIL, "5.1.3", "none", NULL,
                                           "x-unix", NULL, "bad address syntax");
                RemoteItem *n = realloc(p->remote, (p->n_remote + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                p->remote = n;
                n[p->n_remote] = (RemoteItem) {
                        .rcpt = rcpt,
                        .address = strdup(d->address),
                        .key = TAKE_PTR(key),
                        .dest = p->runner->relay_host ? strdup(p->runner->relay_host) : TAKE_PTR(domain),
                };
                p->n_remote++;
                if (!n[p->n_remote - 1].address || !n[p->n_remote - 1].dest)
                        return -ENOMEM;
                return 0;
        }
        default:
                return outcome_add(p, rcpt, d->status == MAIL_PERMFAIL ? key : NULL, d->address, d->status,
                                   d->dsn, "none", NULL, "x-unix", NULL, strempty(d->reason));
        }
}

/* ---- remote delivery ---- */

static int read_content(void *userdata, int (*cb)(const void *, size_t, void *), void *cb_data) {
        QueueFile *f = userdata;
        return queue_file_read_content(f, cb, cb_data);
}

static int deliver_remote_group(Pass *p, size_t *idx, size_t n) {
        Runner *r = p->runner;
        QueueFile *f = p->f;
        const char *dest = p->remote[idx[0]].dest;
        SmtpTarget *targets = NULL;
        size_t n_targets = 0;
        RouteError err = {};
        int k;

        if (r->relay_host)
                k = route_resolve(r->relay_host, r->relay_mx, r->relay_port, r->myhostname, false, &targets,
                                  &n_targets, &err);
        else
                k = route_resolve(dest, true, 25, r->myhostname, true, &targets, &n_targets, &err);
        if (k < 0)
                return k;
        if (n_targets > 0 && string_has_cc(f->sender)) {
                route_targets_free(targets, n_targets);
                n_targets = 0;
                err = (RouteError) { .status = MAIL_PERMFAIL, .dsn = "5.1.7" };
                snprintf(err.text, sizeof err.text, "bad sender address syntax");
        }
        if (n_targets == 0) {
                for (size_t i = 0; i < n && k >= 0; i++) {
                        RemoteItem *it = &p->remote[idx[i]];
                        k = outcome_add(p, it->rcpt, err.status == MAIL_PERMFAIL ? it->key : NULL, it->address,
                                        err.status, err.dsn, "none", NULL, "x-unix", NULL, err.text);
                }
                return k;
        }

        SmtpRecipient *rc = calloc(n, sizeof *rc);
        if (!rc) {
                route_targets_free(targets, n_targets);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                rc[i].address = p->remote[idx[i]].address;
        SmtpMessage m = {
                .sender = f->sender,
                .eight_bit = f->esmtp && strcasestr(f->esmtp, "BODY=8BITMIME"),
                .size = f->content_size,
                .read_content = read_content,
                .userdata = f,
        };
        _cleanup_free_ char *relay = NULL;
        done_flush_before_delivery(p);
        k = smtp_deliver(&r->smtp, r->cache, dest, targets, n_targets, &m, rc, n, &relay);
        route_targets_free(targets, n_targets);
        if (k < 0) {
                free(rc);
                return k;
        }
        for (size_t i = 0; i < n; i++) {
                RemoteItem *it = &p->remote[idx[i]];
                /* Remote-MTA is the host name, without "[ip]:port". */
                _cleanup_free_ char *mta = NULL;
                if (rc[i].reply && relay) {
                        mta = strdup(relay);
                        if (mta)
                                mta[strcspn(mta, "[")] = 0;
                }
                if (k >= 0 && rc[i].status == MAIL_OK)
                        record_success(p, it->rcpt, it->key);
                if (k >= 0)
                        k = outcome_add(p, it->rcpt, rc[i].status == MAIL_OK ? NULL : it->key, it->address,
                                        rc[i].status, rc[i].dsn, relay, mta, rc[i].reply ? "smtp" : "x-unix",
                                        rc[i].reply, rc[i].detail);
                smtp_recipient_done(&rc[i]);
        }
        free(rc);
        return k;
}

static int deliver_remote(Pass *p) {
        bool *taken = calloc(p->n_remote + 1, sizeof(bool));
        size_t *idx = calloc(p->n_remote + 1, sizeof(size_t));
        int k = 0;

        if (!taken || !idx) {
                free(taken);
                free(idx);
                return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_remote && k >= 0; i++) {
                if (taken[i])
                        continue;
                /* One session per destination, at most rcpt_limit recipients each. */
                size_t n = 0;
                for (size_t j = i; j < p->n_remote && n < p->runner->rcpt_limit; j++)
                        if (!taken[j] && strcaseeq(p->remote[j].dest, p->remote[i].dest)) {
                                taken[j] = true;
                                idx[n++] = j;
                        }
                k = deliver_remote_group(p, idx, n);
        }
        free(taken);
        free(idx);
        return k;
}

/* ---- finishing a pass ---- */

static int write_defer_log(Pass *p) {
        Runner *r = p->runner;
        _cleanup_free_ char *path = NULL, *tmp = NULL;
        FILE *o;

        if (path_of(r, QUEUE_DEFER_LOG, p->f->id, &path) < 0 || asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return negative_errno();
        o = fdopen(fd, "w");
        if (!o) {
                safe_close(fd);
                return -ENOMEM;
        }
        for (size_t i = 0; i < p->n_outcomes; i++) {
                const Outcome *oc = &p->outcomes[i];
                if (oc->status != MAIL_TEMPFAIL)
                        continue;
                fprintf(o, "%zu\t", oc->rcpt);
                for (const char *s = oc->text; *s; s++)
                        fputc((unsigned char) *s < 0x20 ? ' ' : *s, o);
                fputc('\n', o);
        }
        if (fclose(o) != 0) {
                (void) unlink(tmp);
                return -EIO;
        }
        if (rename(tmp, path) < 0)
                return negative_errno();
        return 0;
}

static int send_bounce(Pass *p) {
        Runner *r = p->runner;
        QueueFile *f = p->f;
        BounceRecipient *br;
        size_t n = 0;
        int k;

        for (size_t i = 0; i < p->n_outcomes; i++) {
                MailStatus s = p->outcomes[i].status;
                if (s == MAIL_PERMFAIL || (s == MAIL_TEMPFAIL && p->expired))
                        n++;
        }
        if (n == 0)
                return 0;
        if (isempty(f->sender)) {
                log_notice("%s: undeliverable mail from the null sender (a bounce) is discarded, %zu recipient(s)",
                           f->id, n);
                return 0;
        }
        br = calloc(n, sizeof *br);
        if (!br)
                return -ENOMEM;
        n = 0;
        for (size_t i = 0; i < p->n_outcomes; i++) {
                const Outcome *o = &p->outcomes[i];
                if (!(o->status == MAIL_PERMFAIL || (o->status == MAIL_TEMPFAIL && p->expired)))
                        continue;
                br[n++] = (BounceRecipient) {
                        .final = o->address,
                        .original = f->recipients[o->rcpt].address,
                        .dsn = o->dsn,
                        .remote_mta = o->remote_mta,
                        .diag_type = o->diag_type,
                        .diagnostic = o->diagnostic,
                        .text = o->text,
                };
        }
        char id[QUEUE_ID_MAX];
        k = bounce_write(r->config, r->queue_dir, f, br, n, id);
        free(br);
        if (k < 0)
                return log_error_errno(k, "%s: cannot queue the non-delivery notification: %m", f->id);
        LogField fields[] = { { "MTA_QUEUE_ID", f->id } };
        log_event(LOG_INFO, fields, ELEMENTSOF(fields), "%s: sender non-delivery notification: %s", f->id, id);
        return 0;
}

static int finish(Pass *p) {
        Runner *r = p->runner;
        QueueFile *f = p->f;
        int k;

        /* Bounce first, then its records, then the statuses: a crash anywhere in between sends a
         * bounce twice at worst. */
        k = send_bounce(p);
        if (k < 0)
                p->failed_io = true;
        if (!p->failed_io)
                for (size_t i = 0; i < p->n_outcomes; i++) {
                        Outcome *o = &p->outcomes[i];
                        bool bounced = o->status == MAIL_PERMFAIL || (o->status == MAIL_TEMPFAIL && p->expired);
                        if (bounced && o->key && done_append(p, o->rcpt, o->key, true) < 0)
                                p->failed_io = true;
                }
        /* The records must survive a power cut only when the message stays queued, so that the next
         * attempt skips what was done. A message that leaves the queue now takes them along: if the
         * power fails before its removal reaches the disk, deliveries are repeated, never lost (and
         * after a crash of the process alone, the written records still prevent repeats). */
        bool stays = p->failed_io;
        for (size_t i = 0; i < p->n_outcomes; i++)
                if (p->outcomes[i].status == MAIL_TEMPFAIL && !p->expired)
                        stays = true;
        if (stays && (k = done_flush(p)) < 0) {
                log_error_errno(k, "%s: cannot record deliveries in done/: %m", f->id);
                p->failed_io = true;
        }
        if (stays && p->done_dirty && p->done_fd >= 0 && fsync(p->done_fd) < 0) {
                log_error_errno(errno, "%s: cannot sync done/ log: %m", f->id);
                p->failed_io = true;
        }

        bool pending = false;
        for (size_t i = 0; i < f->n_recipients; i++) {
                if (f->recipients[i].status != RECIPIENT_PENDING)
                        continue;
                bool temp = false, bounced = false;
                for (size_t j = 0; j < p->n_outcomes; j++) {
                        const Outcome *o = &p->outcomes[j];
                        if (o->rcpt != i)
                                continue;
                        if (o->status == MAIL_TEMPFAIL && !p->expired)
                                temp = true;
                        else if (o->status != MAIL_OK)
                                bounced = true;
                }
                /* Deliveries done in earlier passes count too. */
                char prefix[32];
                int n = snprintf(prefix, sizeof prefix, "%zu\t!", i);
                for (char **l = p->done; l && *l; l++)
                        if (strncmp(*l, prefix, (size_t) n) == 0)
                                bounced = true;
                if (temp || p->failed_io) {
                        pending = true;
                        continue;
                }
                k = queue_file_set_recipient_status(f, i, bounced ? RECIPIENT_BOUNCED : RECIPIENT_DELIVERED);
                if (k < 0) {
                        log_error_errno(k, "%s: cannot update recipient status: %m", f->id);
                        pending = true;
                }
        }

        if (!pending) {
                k = queue_file_remove(f, r->queue_dir);
                if (k < 0)
                        return log_error_errno(k, "%s: cannot remove queue file: %m", f->id);
                LogField fields[] = { { "MTA_QUEUE_ID", f->id } };
                log_event(LOG_INFO, fields, ELEMENTSOF(fields), "%s: removed", f->id);
                return 0;
        }

        /* Staying after all (a status could not be set): the records must be there for the next try. */
        if (!stays && (k = done_flush(p)) < 0)
                log_error_errno(k, "%s: cannot record deliveries in done/: %m", f->id);
        unsigned attempts = f->attempts + 1;
        uint64_t next = (uint64_t) time(NULL) + runner_backoff(r->min_backoff, r->max_backoff, attempts - 1);
        k = queue_file_set_schedule(f, next, attempts);
        if (k >= 0)
                k = queue_file_sync(f);
        if (k < 0)
                log_error_errno(k, "%s: cannot update queue file: %m", f->id);
        k = write_defer_log(p);
        if (k < 0)
                log_warning_errno(k, "%s: cannot write defer/ log: %m", f->id);
        k = queue_file_move(f, r->queue_dir, QUEUE_DEFERRED);
        if (k < 0)
                return log_error_errno(k, "%s: cannot move queue file to deferred/: %m", f->id);
        return 0;
}

static void pass_done(Pass *p) {
        for (size_t i = 0; i < p->n_outcomes; i++) {
                Outcome *o = &p->outcomes[i];
                free(o->key);
                free(o->address);
                free(o->relay);
                free(o->remote_mta);
                free(o->diagnostic);
                free(o->text);
        }
        free(p->outcomes);
        for (size_t i = 0; i < p->n_remote; i++) {
                free(p->remote[i].address);
                free(p->remote[i].key);
                free(p->remote[i].dest);
        }
        free(p->remote);
        strv_free(p->done);
        safe_close(p->done_fd);
        safe_close(p->content_fd);
}

static int process_end(Pass *p, int k) {
        Runner *r = p->runner;
        QueueFile *f = p->f;

        if (k >= 0)
                k = deliver_remote(p);
        if (k >= 0)
                k = finish(p);
        if (k == -ENOMEM)
                log_oom();
        if (k < 0) {
                /* Whatever went wrong, the message must not stay in new/: the path unit would start
                 * us again at once, in a loop. It is tried again after the usual backoff. */
                uint64_t next = (uint64_t) time(NULL) + runner_backoff(r->min_backoff, r->max_backoff, f->attempts);
                if (queue_file_set_schedule(f, next, f->attempts + 1) >= 0 && queue_file_sync(f) >= 0)
                        (void) queue_file_move(f, r->queue_dir, QUEUE_DEFERRED);
        }
        pass_done(p);
        return k;
}

static int batch_flush(Runner *r) {
        LocalRequest reqs[LOCAL_AGENT_PIPELINE_MAX];
        LocalResult res[LOCAL_AGENT_PIPELINE_MAX];
        int fds[LOCAL_AGENT_PIPELINE_MAX];
        size_t n = r->n_batch;
        int k, ret = 0;

        if (n == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                Parked *b = r->batch[i];
                reqs[i] = local_request_for(&b->pass, b->rcpt, &b->dl.items[0], 0, NULL);
                fds[i] = b->pass.content_fd;
        }
        _cleanup_close_ int turn = mailbox_turn(r, &r->batch[0]->dl.items[0]);
        k = local_agent_deliver_many(r->agent, reqs, fds, n, res);
        turn = safe_close(turn);

        r->n_batch = 0;
        for (size_t i = 0; i < n; i++) {
                Parked *b = r->batch[i];
                int q = k;
                if (q >= 0)
                        q = local_result_apply(&b->pass, b->rcpt, &b->dl.items[0], b->key, 0, NULL, &res[i]);
                else
                        local_result_done(&res[i]);
                q = process_end(&b->pass, q);
                b->pass = (Pass) { .done_fd = -EBADF, .content_fd = -EBADF };
                parked_free(b);
                if (q == -ENOMEM)
                        ret = q;
        }
        return ret;
}

/* Takes over p, *f, *dl and key. */
static int batch_add(Runner *r, Pass *p, QueueFile **f, DeliveryList *dl, size_t rcpt, char *key) {
        int k;

        if (r->n_batch > 0 && (r->n_batch == LOCAL_AGENT_PIPELINE_MAX || !streq(r->batch[0]->key, key))) {
                k = batch_flush(r);
                if (k < 0) {
                        free(key);
                        return k;
                }
        }
        Parked *b = malloc(sizeof *b);
        if (!b) {
                free(key);
                return -ENOMEM;
        }
        *b = (Parked) { .pass = *p, .f = TAKE_PTR(*f), .dl = *dl, .rcpt = rcpt, .key = key };
        b->pass.f = b->f;
        *dl = (DeliveryList) {};
        r->batch[r->n_batch++] = b;
        return 0;
}

/* The one pending recipient, when there is exactly one; SIZE_MAX otherwise. */
static size_t only_pending_recipient(const QueueFile *f) {
        size_t found = SIZE_MAX;
        for (size_t i = 0; i < f->n_recipients; i++) {
                if (f->recipients[i].status != RECIPIENT_PENDING)
                        continue;
                if (found != SIZE_MAX)
                        return SIZE_MAX;
                found = i;
        }
        return found;
}

/* *f is taken over when the message joins a batch. */
static int process_message(Runner *r, QueueFile **fp) {
        QueueFile *f = *fp;
        Pass p = { .runner = r, .f = f, .done_fd = -EBADF, .content_fd = -EBADF };
        int k;

        uint64_t lifetime = isempty(f->sender) ? r->bounce_lifetime : r->max_lifetime;
        p.expired = f->attempts > 0 && (uint64_t) time(NULL) >= f->arrival + lifetime;

        k = done_load(&p);
        if (k < 0) {
                log_error_errno(k, "%s: cannot read done/ log: %m", f->id);
                return process_end(&p, k);
        }
        p.content_fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (p.content_fd < 0) {
                k = log_error_errno(errno, "%s: cannot reopen queue file: %m", f->id);
                return process_end(&p, k);
        }

        size_t only = only_pending_recipient(f);
        for (size_t i = 0; i < f->n_recipients; i++) {
                if (f->recipients[i].status != RECIPIENT_PENDING)
                        continue;
                DeliveryList dl = {};
                k = resolver_expand(r->resolver, f->recipients[i].address, &dl);
                if (k < 0) {
                        k = outcome_add(&p, i, NULL, f->recipients[i].address, MAIL_TEMPFAIL, "4.3.0", "none",
                                        NULL, "x-unix", NULL, "recipient lookup failed (map or resolver error)");
                } else if (i == only && dl.n == 1 && dl.items[0].kind == DELIVERY_MAILBOX) {
                        char *key = delivery_key(&dl.items[0]);
                        if (!key)
                                k = -ENOMEM;
                        else if (done_state(&p, i, key) == 0 && !done_for_any(&p, key)) {
                                k = batch_add(r, &p, fp, &dl, i, key);
                                delivery_list_done(&dl);
                                if (k < 0) {
                                        /* Not parked: nothing was sent for it, it stays queued. */
                                        if (*fp)
                                                pass_done(&p);
                                        return k;
                                }
                                return 0;
                        } else {
                                free(key);
                                k = handle_delivery(&p, i, &dl.items[0], 0, NULL);
                        }
                } else {
                        for (size_t j = 0; j < dl.n && k >= 0; j++)
                                k = handle_delivery(&p, i, &dl.items[j], 0, NULL);
                }
                delivery_list_done(&dl);
                if (k < 0)
                        break;
        }
        return process_end(&p, k);
}

/* ---- scanning ---- */

static void move_corrupt(Runner *r, QueueDir d, const char *id) {
        _cleanup_free_ char *from = NULL, *to = NULL;
        if (path_of(r, d, id, &from) < 0 || path_of(r, QUEUE_CORRUPT, id, &to) < 0)
                return;
        _cleanup_close_ int fd = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                return;
        if (rename(from, to) < 0)
                log_error_errno(errno, "%s: cannot move corrupt queue file aside: %m", id);
        else
                log_error("%s: corrupt queue file moved to corrupt/", id);
}

static bool wanted(Runner *r, const char *id) {
        return !r->ids || strv_contains(r->ids, id);
}

/* Returns 1 when the message was processed, 0 when skipped. */
static int try_message(Runner *r, QueueDir d, const char *id, bool due_only) {
        _cleanup_(queue_file_freep) QueueFile *f = NULL;
        int k;

        if (!wanted(r, id) || strv_contains(r->seen, id))
                return 0;
        k = queue_file_open_id(r->queue_dir, d, id, O_RDWR, true, &f);
        if (k == -EWOULDBLOCK || k == -ENOENT)
                return 0;  /* another runner has it, or it moved */
        if (k == -EBADMSG) {
                move_corrupt(r, d, id);
                return 0;
        }
        if (k < 0) {
                log_error_errno(k, "%s: cannot open queue file: %m", id);
                return 0;
        }
        if (due_only && !r->flush && !r->ids && f->next_attempt > (uint64_t) time(NULL))
                return 0;
        if (strv_extend(&r->seen, id) < 0)
                return -ENOMEM;
        k = process_message(r, &f);
        if (k == -ENOMEM)
                return k;
        return 1;
}

static void clean_incoming(Runner *r) {
        _cleanup_strv_free_ char **ids = NULL;
        if (queue_list(r->queue_dir, QUEUE_INCOMING, &ids) < 0)
                return;
        time_t now = time(NULL);
        for (char **i = ids; i && *i; i++) {
                _cleanup_free_ char *path = NULL;
                struct stat st;
                if (path_of(r, QUEUE_INCOMING, *i, &path) < 0)
                        return;
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || fstat(fd, &st) < 0)
                        continue;
                /* A writer holds its lock until it commits; an unlocked old file is crash debris. */
                if (now - st.st_mtime < STALE_INCOMING_SEC || flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue;
                if (unlink(path) == 0)
                        log_info("%s: removed stale incomplete file from incoming/", *i);
        }
}

static int scan(Runner *r, QueueDir d, bool due_only, size_t *ret_processed) {
        _cleanup_strv_free_ char **ids = NULL;
        size_t n = 0;
        int k;

        k = queue_list(r->queue_dir, d, &ids);
        if (k < 0)
                return log_error_errno(k, "Cannot list %s/%s: %m", r->queue_dir, queue_dir_name(d));
        for (char **i = ids; i && *i; i++) {
                k = try_message(r, d, *i, due_only);
                if (k < 0)
                        return k;
                n += (size_t) k;
        }
        k = batch_flush(r);
        if (k < 0)
                return k;
        *ret_processed = n;
        return 0;
}

int runner_run(Runner *r) {
        int k;

        k = queue_dirs_ensure(r->queue_dir);
        if (k < 0)
                return log_error_errno(k, "Cannot set up queue directory %s: %m", r->queue_dir);
        clean_incoming(r);

        for (unsigned round = 0;; round++) {
                size_t a = 0, b = 0;
                k = scan(r, QUEUE_NEW, false, &a);
                if (k < 0)
                        return k;
                if (round == 0) {
                        k = scan(r, QUEUE_DEFERRED, true, &b);
                        if (k < 0)
                                return k;
                }
                /* Stop when a round found nothing new to do: new/ is empty or what is left there is
                 * another runner's. */
                if (a == 0 && (round > 0 || b == 0))
                        break;
        }
        return 0;
}
