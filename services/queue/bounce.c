/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/macro.h"
#include "services/queue/bounce.h"

#define HEADERS_MAX (256 * 1024)

/* Copies s without control characters; keeps 8-bit bytes (UTF-8 addresses). */
static void put_clean(FILE *o, const char *s, size_t max) {
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *) strempty(s); *p && n < max; p++, n++)
                fputc((*p < 0x20 || *p == 0x7f) ? ' ' : *p, o);
}

static void rfc5322_date(uint64_t t, char *buf, size_t size) {
        time_t tt = (time_t) t;
        struct tm tm;
        if (!localtime_r(&tt, &tm) || strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
                snprintf(buf, size, "Thu, 01 Jan 1970 00:00:00 +0000");
}

int bounce_format(const Config *c, const QueueFile *f, const BounceRecipient *r, size_t n,
                  const char *headers, size_t headers_len, uint64_t now, char **ret, size_t *ret_len) {
        const char *host = strempty(config_get(c, "myhostname"));
        const char *origin = strempty(config_get(c, "myorigin"));
        const char *mail_name = config_get(c, "mail_name");
        char date[64], arrival[64], boundary[128];
        char *buf = NULL;
        size_t len = 0;
        FILE *o;

        o = open_memstream(&buf, &len);
        if (!o)
                return -ENOMEM;

        rfc5322_date(now, date, sizeof date);
        rfc5322_date(f->arrival, arrival, sizeof arrival);
        snprintf(boundary, sizeof boundary, "%s.%" PRIu64 "/%s", f->id, now, host);

        fprintf(o, "Date: %s\n", date);
        fprintf(o, "From: MAILER-DAEMON@%s (Mail Delivery System)\n", origin);
        fprintf(o, "Subject: Undelivered Mail Returned to Sender\n");
        fputs("To: <", o);
        put_clean(o, f->sender, 512);
        fputs(">\n", o);
        fprintf(o, "Auto-Submitted: auto-replied\n");
        fprintf(o, "Message-Id: <%s.%" PRIu64 ".bounce@%s>\n", f->id, now, host);
        fprintf(o, "MIME-Version: 1.0\n");
        fprintf(o, "Content-Type: multipart/report; report-type=delivery-status;\n");
        fprintf(o, "\tboundary=\"%s\"\n", boundary);
        fprintf(o, "Content-Transfer-Encoding: 8bit\n");
        fprintf(o, "\nThis is a MIME-encapsulated message.\n\n");

        /* The readable part. */
        fprintf(o, "--%s\n", boundary);
        fprintf(o, "Content-Description: Notification\n");
        fprintf(o, "Content-Type: text/plain; charset=utf-8\n");
        fprintf(o, "Content-Transfer-Encoding: 8bit\n\n");
        fprintf(o, "This is the mail system at host %s.\n\n", host);
        fprintf(o, "Your message could not be delivered to one or more of its recipients;\n"
                   "the reasons are listed below. The headers of your message are attached.\n\n"
                   "If you need help, write to the postmaster of this site and include\n"
                   "this report.\n\n");
        fprintf(o, "%*s The %s program\n\n", 20, "", mail_name ? mail_name : "mta");
        for (size_t i = 0; i < n; i++) {
                fputc('<', o);
                put_clean(o, r[i].final, 512);
                fputc('>', o);
                if (r[i].original && r[i].final && !streq(r[i].original, r[i].final)) {
                        fputs(" (expanded from <", o);
                        put_clean(o, r[i].original, 512);
                        fputs(">)", o);
                }
                fputs(": ", o);
                put_clean(o, r[i].text, 2000);
                fputs("\n\n", o);
        }

        /* The machine-readable part (RFC 3464). */
        fprintf(o, "--%s\n", boundary);
        fprintf(o, "Content-Description: Delivery report\n");
        fprintf(o, "Content-Type: message/delivery-status\n\n");
        fprintf(o, "Reporting-MTA: dns; %s\n", host);
        fprintf(o, "X-Mta-Queue-ID: %s\n", f->id);
        fputs("X-Mta-Sender: rfc822; ", o);
        put_clean(o, f->sender, 512);
        fputc('\n', o);
        fprintf(o, "Arrival-Date: %s\n", arrival);
        for (size_t i = 0; i < n; i++) {
                fputs("\nFinal-Recipient: rfc822; ", o);
                put_clean(o, r[i].final, 512);
                fputc('\n', o);
                if (r[i].original) {
                        fputs("Original-Recipient: rfc822; ", o);
                        put_clean(o, r[i].original, 512);
                        fputc('\n', o);
                }
                fprintf(o, "Action: failed\n");
                fputs("Status: ", o);
                put_clean(o, r[i].dsn ? r[i].dsn : "5.0.0", 15);
                fputc('\n', o);
                if (r[i].remote_mta) {
                        fputs("Remote-MTA: dns; ", o);
                        put_clean(o, r[i].remote_mta, 255);
                        fputc('\n', o);
                }
                fprintf(o, "Diagnostic-Code: %s; ", r[i].diag_type ? r[i].diag_type : "x-unix");
                /* Header lines stay below 998 octets. */
                put_clean(o, r[i].diagnostic ? r[i].diagnostic : r[i].text, 900);
                fputc('\n', o);
        }
        fputc('\n', o);

        fprintf(o, "--%s\n", boundary);
        fprintf(o, "Content-Description: Undelivered Message Headers\n");
        fprintf(o, "Content-Type: text/rfc822-headers\n");
        fprintf(o, "Content-Transfer-Encoding: 8bit\n\n");
        if (headers_len > 0) {
                fwrite(headers, 1, headers_len, o);
                if (headers[headers_len - 1] != '\n')
                        fputc('\n', o);
        }
        fprintf(o, "\n--%s--\n", boundary);

        if (fclose(o) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        *ret_len = len;
        return 0;
}

typedef struct HeaderBuf {
        char *data;
        size_t len;
        bool done;
} HeaderBuf;

static int header_cb(const void *data, size_t len, void *userdata) {
        HeaderBuf *h = userdata;
        size_t room = HEADERS_MAX - h->len;
        size_t k = len < room ? len : room;
        memcpy(h->data + h->len, data, k);
        h->len += k;
        /* Stop at the blank line that ends the header. */
        for (size_t i = 0; i + 1 < h->len; i++)
                if (h->data[i] == '\n' && h->data[i + 1] == '\n') {
                        h->len = i + 1;
                        h->done = true;
                        return 1;
                }
        if (h->len == 1 && h->data[0] == '\n') {
                h->len = 0;
                return 1;
        }
        return h->len >= HEADERS_MAX ? 1 : 0;
}

int bounce_write(const Config *c, const char *queue_dir, QueueFile *f, const BounceRecipient *r, size_t n,
                 char ret_id[static QUEUE_ID_MAX]) {
        _cleanup_(queue_writer_freep) QueueWriter *w = NULL;
        _cleanup_free_ char *text = NULL;
        size_t text_len;
        HeaderBuf h = {};
        int k;

        h.data = malloc(HEADERS_MAX);
        if (!h.data)
                return -ENOMEM;
        k = queue_file_read_content(f, header_cb, &h);
        if (k < 0) {
                free(h.data);
                return k;
        }
        k = bounce_format(c, f, r, n, h.data, h.len, (uint64_t) time(NULL), &text, &text_len);
        free(h.data);
        if (k < 0)
                return k;

        QueueEnvelopeInfo info = {
                .sender = "",
                .client = "local",
                .protocol = "LOCAL",
                .esmtp = "BODY=8BITMIME",
        };
        if ((k = queue_writer_new(queue_dir, &w)) < 0 ||
            (k = queue_writer_set_envelope(w, &info, (uint64_t) time(NULL))) < 0 ||
            (k = queue_writer_add_recipient(w, f->sender)) < 0 ||
            (k = queue_writer_write(w, text, text_len)) < 0 ||
            (k = queue_writer_commit(w)) < 0)
                return k;
        snprintf(ret_id, QUEUE_ID_MAX, "%s", queue_writer_id(w));
        return 0;
}
