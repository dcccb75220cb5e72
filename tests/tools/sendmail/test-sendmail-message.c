/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strv.h"
#include "tools/sendmail/addrlist.h"
#include "tools/sendmail/deadletter.h"
#include "tools/sendmail/message.h"

static void check_list(const char *text, const char *const *expect) {
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        assert(addrlist_parse(text, &l) == 0);
        for (; expect[n]; n++) {
                if (!l || !l[n] || !streq(l[n], expect[n])) {
                        fprintf(stderr, "%s: item %zu: got %s, want %s\n", text, n,
                                l && l[n] ? l[n] : "(none)", expect[n]);
                        abort();
                }
        }
        assert(strv_length(l) == n);
}

#define LIST(text, ...) check_list(text, (const char *const[]) { __VA_ARGS__, NULL })
#define EMPTY(text) check_list(text, (const char *const[]) { NULL })

static void test_addrlist(void) {
        LIST("alice@example.test", "alice@example.test");
        LIST("Alice <alice@example.test>", "alice@example.test");
        LIST("alice@example.test (Alice Liddell)", "alice@example.test");
        LIST("\"Smith, John\" <john@x.test>, bob", "john@x.test", "bob");
        LIST("a@x, b@y,c@z", "a@x", "b@y", "c@z");
        LIST("friends: a@x, \"B\" <b@y>; c@z", "a@x", "b@y", "c@z");
        EMPTY("undisclosed-recipients:;");
        EMPTY("");
        EMPTY("  (just a comment) ");
        LIST("<@relay.test,@other.test:user@final.test>", "user@final.test");
        LIST("\"john doe\"@x.test", "\"john doe\"@x.test");
        LIST("Name (nested (comment) here) <n@x>", "n@x");
        LIST("a@[192.0.2.1]", "a@[192.0.2.1]");
        LIST("a@x; b@y", "a@x", "b@y");
        LIST("x <unclosed@x", "unclosed@x");
        LIST("<>, c@z", "c@z");
        LIST("Joe\\, Q <q@x>", "q@x");
        LIST("a@x b@y", "a@x", "b@y");
        LIST("\"unclosed@x", "\"unclosed@x");
        LIST("a@[192.0.2.1", "a@[192.0.2.1");
        LIST("first . last @ x.test", "first.last@x.test");
        LIST("\"a b\"@x c@y", "\"a b\"@x", "c@y");

        assert(addrlist_address_valid("a@b"));
        assert(addrlist_address_valid("\"a b\"@x"));
        assert(!addrlist_address_valid(""));
        assert(!addrlist_address_valid("a b@x"));
        assert(!addrlist_address_valid("a\n@x"));
        assert(!addrlist_address_valid("\"a@x"));
        assert(!addrlist_address_valid("a<b>"));
        char big[300];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        assert(!addrlist_address_valid(big));

        assert(addrlist_address_qualified("a@b"));
        assert(!addrlist_address_qualified("\"a@b\""));
        assert(!addrlist_address_qualified("root"));

        _cleanup_free_ char *q = NULL, *q2 = NULL;
        assert(addrlist_qualify("root", "example.test", &q) == 0 && streq(q, "root@example.test"));
        assert(addrlist_qualify("a@b", "example.test", &q2) == 0 && streq(q2, "a@b"));
}

static Message *read_string(const char *s, bool ignore_dots) {
        FILE *f = fmemopen((void *) s, strlen(s), "r");
        Message *m = NULL;

        assert(f);
        assert(message_read(f, ignore_dots, 0, &m) == 0);
        fclose(f);
        return m;
}

static const char *finish(Message *m) {
        assert(message_finish(m, &(MessageFinish) {
                .from_address = "me@example.test",
                .full_name = "Me Myself",
                .message_id = "<ID@example.test>",
                .date = 0,
        }) == 0);
        return message_content(m, NULL);
}

static void test_read(void) {
        _cleanup_(message_freep) Message *m = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL, *m5 = NULL;
        _cleanup_free_ char *v = NULL;

        /* CRLF normalized, lone dot ends input without -i, "From " line dropped. */
        m = read_string("From someone Thu Dec  3 00:00:00 2026\r\nSubject: x\r\nTo: a@x,\r\n  b@y\r\n\r\n"
                        "line\r\n..dots stay\r\n.\r\nnot read\r\n", false);
        assert(message_n_headers(m) == 2);
        assert(message_header_value(m, "to", 0, &v) == 0);
        assert(streq(v, "a@x,  b@y"));
        const char *c = finish(m);
        assert(strstr(c, "Subject: x\nTo: a@x,\n  b@y\n"));
        assert(strstr(c, "\n\nline\n..dots stay\n"));
        assert(!strstr(c, "not read"));
        assert(!strstr(c, "From someone"));
        assert(!strchr(c, '\r'));
        assert(strstr(c, "From: Me Myself <me@example.test>\n"));
        assert(strstr(c, "Message-ID: <ID@example.test>\n"));
        assert(strstr(c, "Date: "));

        /* With -i the dot is data. A last line without newline gets one. */
        m2 = read_string("Subject: y\n\na\n.\nb", true);
        c = finish(m2);
        assert(strstr(c, "\n\na\n.\nb\n"));

        /* Existing headers are kept and not duplicated; Bcc and Return-Path go. */
        m3 = read_string("From: Other <o@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-Id: <k@x>\n"
                         "Bcc: hidden@x\n  more@x\nReturn-Path: <r@x>\nTo: t@x\n\nbody\n", false);
        _cleanup_strv_free_ char **r = NULL;
        assert(message_extract_recipients(m3, &r) == 0);
        assert(strv_length(r) == 3);
        assert(streq(r[0], "hidden@x") && streq(r[1], "more@x") && streq(r[2], "t@x"));
        c = finish(m3);
        assert(!strstr(c, "hidden"));
        assert(!strstr(c, "Return-Path"));
        assert(!strstr(c, "Me Myself"));
        assert(!strstr(c, "<ID@example.test>"));
        assert(strstr(c, "To: t@x\n\nbody\n"));

        /* No header at all: the added headers come first, then a blank line, then the text. */
        m4 = read_string("just text: a space in the name, so not a header\nsecond line\n", false);
        assert(message_n_headers(m4) == 0);
        message_free(m4);
        m4 = read_string("just text\nsecond line\n", false);
        assert(message_n_headers(m4) == 0);
        c = finish(m4);
        assert(strncmp(c, "Date: ", 6) == 0);
        assert(strstr(c, "\n\njust text\nsecond line\n"));

        /* Resent- headers take over for -t. */
        m5 = read_string("To: old@x\nResent-To: new@x\nResent-Cc: other@x\n\n", false);
        _cleanup_strv_free_ char **r2 = NULL;
        assert(message_extract_recipients(m5, &r2) == 0);
        assert(strv_length(r2) == 2 && streq(r2[0], "new@x") && streq(r2[1], "other@x"));
}

static void test_limits_and_8bit(void) {
        _cleanup_(message_freep) Message *m = NULL, *m2 = NULL;
        const char *s = "Subject: a\n\n0123456789\n";
        FILE *f = fmemopen((void *) s, strlen(s), "r");

        assert(message_read(f, false, 10, &m) == -EFBIG);
        assert(!m);
        fclose(f);

        m2 = read_string("Subject: caf\xc3\xa9\n\nx\n", false);
        finish(m2);
        assert(message_is_8bit(m2));
}

static void test_mailbox(void) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        assert(message_format_mailbox("Alice Liddell", "a@x", &a) == 0 && streq(a, "Alice Liddell <a@x>"));
        assert(message_format_mailbox("J. \"Q\" Public", "q@x", &b) == 0 &&
               streq(b, "\"J. \\\"Q\\\" Public\" <q@x>"));
        assert(message_format_mailbox("", "a@x", &c) == 0 && streq(c, "a@x"));
        _cleanup_free_ char *e = NULL;
        assert(message_format_mailbox("  Padded Name \t", "p@x", &e) == 0 && streq(e, "Padded Name <p@x>"));
        /* A newline in -F must not start a new header. */
        assert(message_format_mailbox("Evil\nBcc: x@y", "e@x", &d) == 0 && !strchr(d, '\n'));
}

static void test_deadletter(void) {
        char dir[] = "/tmp/test-deadletter-XXXXXX", path[64], buf[256];
        const char *msg = "Subject: x\n\nFrom here\n>From there\nend";

        assert(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/dead.letter", dir);
        assert(deadletter_save(path, "a@x", msg, strlen(msg)) == 0);
        FILE *f = fopen(path, "r");
        assert(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        assert(strncmp(buf, "From a@x ", 9) == 0);
        assert(strstr(buf, "\n\n>From here\n>>From there\nend\n\n"));
        unlink(path);
        rmdir(dir);
}

int main(void) {
        test_addrlist();
        test_read();
        test_limits_and_8bit();
        test_mailbox();
        test_deadletter();
        printf("ok\n");
        return 0;
}
