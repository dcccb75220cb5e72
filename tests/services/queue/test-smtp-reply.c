/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "services/queue/route.h"
#include "services/queue/runner.h"
#include "services/queue/smtp-reply.h"

static int feed_all(SmtpReply *r, const char *const *lines) {
        int k = 0;
        for (size_t i = 0; lines[i]; i++) {
                k = smtp_reply_feed(r, lines[i], strlen(lines[i]));
                if (k != 0)
                        return k;
        }
        return k;
}

static void test_single(void) {
        SmtpReply r;
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, "250 2.0.0 Ok: queued as ABC", 27) == 1);
        assert(r.code == 250);
        assert(strcmp(r.dsn, "2.0.0") == 0);
        assert(strcmp(r.text, "Ok: queued as ABC") == 0);
        assert(r.n_lines == 1);
        char buf[256];
        assert(smtp_reply_format(&r, buf, sizeof buf) == 0);
        assert(strcmp(buf, "250 2.0.0 Ok: queued as ABC") == 0);
        /* Feeding a finished reply is a programming error, reported. */
        assert(smtp_reply_feed(&r, "250 x", 5) == -EINVAL);
        smtp_reply_done(&r);
}

static void test_multiline(void) {
        SmtpReply r;
        smtp_reply_init(&r);
        const char *lines[] = { "250-mx.example.test Hello", "250-PIPELINING", "250-SIZE 10240000",
                                "250-STARTTLS", "250 8BITMIME", NULL };
        assert(feed_all(&r, lines) == 1);
        assert(r.code == 250 && r.n_lines == 5);
        assert(strcmp(r.first, "mx.example.test Hello") == 0);
        assert(strcmp(r.lines[3], "STARTTLS") == 0);
        assert(r.dsn[0] == 0);
        smtp_reply_done(&r);

        smtp_reply_init(&r);
        const char *l2[] = { "550-5.1.1 The email account that you tried", "550-5.1.1 to reach does not exist.",
                             "550 5.1.1 Bye", NULL };
        assert(feed_all(&r, l2) == 1);
        assert(strcmp(r.dsn, "5.1.1") == 0);
        assert(strcmp(r.text, "The email account that you tried to reach does not exist. Bye") == 0);
        smtp_reply_done(&r);
}

static void test_bare_code_and_cr(void) {
        SmtpReply r;
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, "354", 3) == 1);
        assert(r.code == 354 && r.text[0] == 0 && r.dsn[0] == 0);
        smtp_reply_done(&r);
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, "221 Bye\r", 8) == 1);
        assert(strcmp(r.text, "Bye") == 0);
        smtp_reply_done(&r);
}

static void test_broken(void) {
        const char *bad[] = { "", "2", "25", "abc def", "25x Ok", "150 Ok", "650 Ok", "099 x", "250_Ok",
                              "250\tOk", "-250 x", NULL };
        for (size_t i = 0; bad[i]; i++) {
                SmtpReply r;
                smtp_reply_init(&r);
                assert(smtp_reply_feed(&r, bad[i], strlen(bad[i])) == -EBADMSG);
                smtp_reply_done(&r);
        }
        /* Code changes inside a multi-line reply. */
        SmtpReply r;
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, "250-a", 5) == 0);
        assert(smtp_reply_feed(&r, "251 b", 5) == -EBADMSG);
        smtp_reply_done(&r);
        /* Endless continuation lines are cut off. */
        smtp_reply_init(&r);
        int k = 0;
        for (int i = 0; i < 1000 && k == 0; i++)
                k = smtp_reply_feed(&r, "250-x", 5);
        assert(k == -E2BIG);
        assert(r.n_lines == SMTP_REPLY_LINES_MAX);
        smtp_reply_done(&r);
}

static void test_hostile_bytes(void) {
        SmtpReply r;
        char line[] = "550 5.7.1 bad\0stuff\x1b[31m\xff\n";
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, line, sizeof line - 1) == 1);
        for (const char *p = r.text; *p; p++)
                assert(*p >= 0x20 && *p < 0x7f);
        assert(strncmp(r.text, "bad?stuff?[31m??", 16) == 0);
        smtp_reply_done(&r);

        /* A very long line is truncated, not overflowed. */
        static char big[20000];
        memset(big, 'A', sizeof big);
        memcpy(big, "421 ", 4);
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, big, sizeof big) == 1);
        assert(strlen(r.text) < SMTP_REPLY_TEXT_MAX);
        smtp_reply_done(&r);
}

static void test_dsn(void) {
        char d[SMTP_DSN_MAX];
        assert(smtp_dsn_parse("5.1.1 x", 7, '5', d) == 5 && strcmp(d, "5.1.1") == 0);
        assert(smtp_dsn_parse("4.7.500", 7, 0, d) == 7 && strcmp(d, "4.7.500") == 0);
        assert(smtp_dsn_parse("4.7.5000", 8, 0, d) == 0);
        assert(smtp_dsn_parse("5.1.1 x", 7, '4', d) == 0);   /* class must match the code */
        assert(smtp_dsn_parse("3.1.1", 5, 0, d) == 0);
        assert(smtp_dsn_parse("5..1", 4, 0, d) == 0);
        assert(smtp_dsn_parse("5.1.", 4, 0, d) == 0);
        assert(smtp_dsn_parse("5.1.1x", 6, 0, d) == 0);
        assert(smtp_dsn_parse("5.1", 3, 0, d) == 0);
        SmtpReply r;
        smtp_reply_init(&r);
        assert(smtp_reply_feed(&r, "250 5.1.1 mismatch", 18) == 1);
        assert(r.dsn[0] == 0);
        assert(strcmp(r.text, "5.1.1 mismatch") == 0);
        smtp_reply_done(&r);
}

static void test_relayhost(void) {
        char *h = NULL;
        bool mx;
        unsigned port;
        assert(route_parse_relayhost("relay.example.com", &h, &mx, &port) == 0);
        assert(strcmp(h, "relay.example.com") == 0 && mx && port == 25);
        free(h);
        assert(route_parse_relayhost("[127.0.0.1]:2525", &h, &mx, &port) == 0);
        assert(strcmp(h, "127.0.0.1") == 0 && !mx && port == 2525);
        free(h);
        assert(route_parse_relayhost("[relay.example.com]", &h, &mx, &port) == 0);
        assert(strcmp(h, "relay.example.com") == 0 && !mx && port == 25);
        free(h);
        assert(route_parse_relayhost("relay:587", &h, &mx, &port) == 0);
        assert(strcmp(h, "relay") == 0 && mx && port == 587);
        free(h);
        assert(route_parse_relayhost("[ipv6:::1]:26", &h, &mx, &port) == 0);
        assert(strcmp(h, "::1") == 0 && !mx && port == 26);
        free(h);
        h = NULL;
        const char *bad[] = { "", "[x", "[x]y", "x:", "x:0", "x:65536", "x:12a", "[]", ":25", NULL };
        for (size_t i = 0; bad[i]; i++)
                assert(route_parse_relayhost(bad[i], &h, &mx, &port) == -EINVAL && h == NULL);
}

static void test_backoff_and_escape(void) {
        assert(runner_backoff(300, 4000, 0) == 300);
        assert(runner_backoff(300, 4000, 1) == 600);
        assert(runner_backoff(300, 4000, 3) == 2400);
        assert(runner_backoff(300, 4000, 4) == 4000);
        assert(runner_backoff(300, 4000, 1000) == 4000);
        char *e = runner_escape_field("a\tb\nc\\d");
        assert(strcmp(e, "a\\tb\\nc\\\\d") == 0);
        free(e);
}

int main(void) {
        test_single();
        test_multiline();
        test_bare_code_and_cr();
        test_broken();
        test_hostile_bytes();
        test_dsn();
        test_relayhost();
        test_backoff_and_escape();
        printf("test-smtp-reply: ok\n");
        return 0;
}
