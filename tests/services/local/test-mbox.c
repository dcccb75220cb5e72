/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/local/mbox.h"

/* Writes content through the writer in pieces of `step` bytes (0: all at once) and returns what
 * came out, so that the ">From " quoting is checked across every split point. */
static char *run(const char *content, size_t len, unsigned flags, size_t step, size_t *ret_len) {
        int fd = memfd_create("mbox", MFD_CLOEXEC);
        MboxWriter *w = malloc(sizeof *w);
        assert(fd >= 0 && w);
        mbox_writer_init(w, fd, flags);
        if (step == 0)
                assert(mbox_writer_body(w, content, len) == 0);
        else
                for (size_t i = 0; i < len; i += step)
                        assert(mbox_writer_body(w, content + i, len - i < step ? len - i : step) == 0);
        assert(mbox_writer_finish(w) == 0);
        off_t size = lseek(fd, 0, SEEK_END);
        assert(size >= 0 && (uint64_t) size == w->bytes);
        char *out = malloc((size_t) size + 1);
        assert(out);
        assert(pread(fd, out, (size_t) size, 0) == size);
        out[size] = '\0';
        *ret_len = (size_t) size;
        close(fd);
        free(w);
        return out;
}

static void check(const char *in, const char *want, unsigned flags) {
        size_t inlen = strlen(in), wantlen = strlen(want);
        for (size_t step = 0; step <= inlen + 1; step++) {
                size_t len;
                char *out = run(in, inlen, flags, step, &len);
                if (len != wantlen || memcmp(out, want, len) != 0) {
                        fprintf(stderr, "step %zu: in=\"%s\"\nwant=\"%s\"\ngot =\"%s\"\n", step, in, want,
                                out);
                        abort();
                }
                free(out);
        }
}

static void test_quoting(void) {
        const unsigned q = MBOX_QUOTE_FROM | MBOX_BLANK_LINE;
        check("", "\n", q);
        check("a", "a\n\n", q);
        check("From x\n", ">From x\n\n", q);
        check("From ", ">From \n\n", q);
        check("From", "From\n\n", q);
        check("Fro", "Fro\n\n", q);
        check("From\n", "From\n\n", q);
        check("FromX\n", "FromX\n\n", q);
        check(" From x\n", " From x\n\n", q);
        check(">From x\n", ">From x\n\n", q);
        check("x\nFrom y\nFrom z", "x\n>From y\n>From z\n\n", q);
        check("x\nFrFrom y\n", "x\nFrFrom y\n\n", q);
        check("\n\nFrom \n\n", "\n\n>From \n\n\n", q);
        check("a From b\nFrom From c\n", "a From b\n>From From c\n\n", q);
        check("From x\n", "From x\n", 0);
        check("no newline", "no newline\n", 0);
        check("", "", 0);
}

static void test_header(void) {
        MboxEnvelope e = { .sender = "a b\r\n@x", .recipient = "r\n@y", .date = 0 };
        MboxWriter *w = malloc(sizeof *w);
        int fd = memfd_create("mbox", MFD_CLOEXEC);
        char buf[512] = "";

        assert(w && fd >= 0);
        setenv("TZ", "UTC", 1);
        mbox_writer_init(w, fd, MBOX_QUOTE_FROM | MBOX_BLANK_LINE);
        assert(mbox_writer_header(w, &e) == 0);
        assert(mbox_writer_body(w, "S: x\n\nbody\n", 11) == 0);
        assert(mbox_writer_finish(w) == 0);
        assert(pread(fd, buf, sizeof buf - 1, 0) > 0);
        assert(streq(buf, "From a_b??@x Thu Jan  1 00:00:00 1970\n"
                          "Return-Path: <a b??@x>\n"
                          "Delivered-To: r?@y\n"
                          "S: x\n\nbody\n\n"));

        /* Maildir files: no separator line, no quoting. */
        int fd2 = memfd_create("maildir", MFD_CLOEXEC);
        assert(fd2 >= 0);
        memset(buf, 0, sizeof buf);
        mbox_writer_init(w, fd2, MBOX_NO_FROM_LINE);
        assert(mbox_writer_header(w, &e) == 0);
        assert(mbox_writer_body(w, "From x\n", 7) == 0);
        assert(mbox_writer_finish(w) == 0);
        assert(pread(fd2, buf, sizeof buf - 1, 0) > 0);
        assert(streq(buf, "Return-Path: <a b??@x>\nDelivered-To: r?@y\nFrom x\n"));
        close(fd2);

        mbox_writer_init(w, -1, 0);
        e = (MboxEnvelope) { .sender = "", .date = 0 };
        assert(mbox_writer_header(w, &e) == 0);
        assert(mbox_writer_finish(w) == 0);
        assert(w->bytes == strlen("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nReturn-Path: <>\n"));
        close(fd);
        free(w);
}

static int memfd_with(const char *text) {
        int fd = memfd_create("q", MFD_CLOEXEC);
        assert(fd >= 0);
        assert(write(fd, text, strlen(text)) == (ssize_t) strlen(text));
        return fd;
}

static void test_delivered_to(void) {
        static const struct {
                const char *msg;
                int want;
        } cases[] = {
                { "Delivered-To: alice@example.test\n\nbody\n", 1 },
                { "delivered-to:   ALICE@Example.Test \r\nSubject: x\n\n", 1 },
                { "Subject: x\nDelivered-To: bob@example.test\n\n", 0 },
                { "Delivered-To: alice@example.test.evil\n\n", 0 },
                { "X-Delivered-To: alice@example.test\n\n", 0 },
                { "Subject: x\n\nDelivered-To: alice@example.test\n", 0 },    /* in the body */
                { "Subject: x\r\n\r\nDelivered-To: alice@example.test\n", 0 },
                { "", 0 },
                { "Delivered-To: alice@example.test", 1 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int fd = memfd_with(cases[i].msg);
                int r = mbox_has_delivered_to(fd, 0, strlen(cases[i].msg), "alice@example.test");
                if (r != cases[i].want) {
                        fprintf(stderr, "case %zu: %d\n", i, r);
                        abort();
                }
                close(fd);
        }
        /* The offset is honoured: the same header after a prefix that is not part of the message. */
        int fd = memfd_with("XXXXDelivered-To: alice@example.test\n\n");
        assert(mbox_has_delivered_to(fd, 4, 34, "alice@example.test") == 1);
        assert(mbox_has_delivered_to(fd, 0, 38, "alice@example.test") == 0);
        close(fd);
}

int main(void) {
        test_quoting();
        test_delivered_to();
        test_header();
        printf("test-mbox: ok\n");
        return 0;
}
