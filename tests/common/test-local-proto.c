/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/local-proto.h"
#include "common/macro.h"

static char buf[LOCAL_PROTO_MAX + 1];

static void test_request_roundtrip(void) {
        /* Every byte a client may have put in the envelope must come back unchanged. */
        static const char sender[] = "evil\r\nR5:x@y\n\x01\xff@example.test";
        LocalRequest in = {
                .kind = "command",
                .user = "alice",
                .target = "/usr/bin/procmail -a \"$EXTENSION\"",
                .sender = sender,
                .recipient = "alice+x@example.test",
                .original = "Alice+X@Example.Test",
                .extension = "x",
                .queue_id = "0123456789ABCDEF0123",
                .arrival = 1700000000,
                .offset = 123,
                .size = UINT64_MAX,
                .flags = "noforward",
        }, out;
        size_t len;

        assert(local_request_encode(&in, buf, sizeof buf - 1, &len) == 0);
        assert(len > 0 && len < sizeof buf);
        assert(local_request_decode(buf, len, &out) == 0);
        assert(streq(out.kind, "command"));
        assert(streq(out.user, "alice"));
        assert(streq(out.target, in.target));
        assert(streq(out.sender, sender));
        assert(streq(out.recipient, in.recipient));
        assert(streq(out.original, in.original));
        assert(streq(out.extension, "x"));
        assert(streq(out.queue_id, in.queue_id));
        assert(out.arrival == 1700000000);
        assert(out.offset == 123);
        assert(out.size == UINT64_MAX);
        assert(streq(out.flags, "noforward"));
}

static void test_request_optional(void) {
        LocalRequest in = { .kind = "mailbox", .user = "bob", .sender = "", .recipient = "bob@x" }, out;
        size_t len;

        assert(local_request_encode(&in, buf, sizeof buf - 1, &len) == 0);
        assert(local_request_decode(buf, len, &out) == 0);
        assert(streq(out.kind, "mailbox"));
        assert(streq(out.sender, ""));
        assert(!out.target && !out.original && !out.extension && !out.queue_id && !out.flags);
        assert(out.offset == 0 && out.size == 0);
}

static void test_reply_roundtrip(void) {
        LocalReply in = { .status = "forward", .dsn = "2.0.0", .text = "forwarded",
                          .forward = "bob\n\\alice\n|\"/usr/bin/vacation alice\"\n" }, out;
        size_t len;

        assert(local_reply_encode(&in, buf, sizeof buf - 1, &len) == 0);
        assert(local_reply_decode(buf, len, &out) == 0);
        assert(streq(out.status, "forward"));
        assert(streq(out.dsn, "2.0.0"));
        assert(streq(out.text, "forwarded"));
        assert(streq(out.forward, in.forward));

        LocalReply ok = { .status = "ok" };
        assert(local_reply_encode(&ok, buf, sizeof buf - 1, &len) == 0);
        assert(len == strlen("s2:ok\n"));
        assert(memcmp(buf, "s2:ok\n", len) == 0);
        assert(local_reply_decode(buf, len, &out) == 0);
        assert(streq(out.status, "ok") && !out.dsn && !out.text && !out.forward);
}

static void test_encode_nobufs(void) {
        LocalRequest in = { .kind = "mailbox", .user = "bob", .sender = "a@b", .recipient = "bob@x" };
        LocalReply rep = { .status = "tempfail", .dsn = "4.2.0", .text = "mailbox locked" };
        size_t len = 4711, full;
        char small[16];

        assert(local_request_encode(&in, buf, sizeof buf, &full) == 0);
        for (size_t n = 0; n < full; n++)
                assert(local_request_encode(&in, small, n < sizeof small ? n : sizeof small, &len) ==
                       -ENOBUFS);
        assert(len == 4711);
        assert(local_reply_encode(&rep, small, sizeof small, &len) == -ENOBUFS);
        assert(len == 4711);
}

static void test_decode_malformed(void) {
        static const char *bad[] = {
                "K7:mailbox",                   /* missing "\n" */
                "K7:mailbox\nU",                /* truncated record */
                "K8:mailbox\n",                 /* length too long */
                "K6:mailbox\n",                 /* length too short */
                "K7:mailbox\nK7:mailbox\n",     /* repeated letter */
                "Z0:\n",                        /* unknown letter */
                "s2:ok\n",                      /* reply letter in a request */
                "A3:1x2\n",                     /* not a number */
                "A0:\n",                        /* empty number */
                "A1:1\nA1:2\n",                 /* repeated number */
                "n21:123456789012345678901\n",  /* overflow */
                "n20:99999999999999999999\n",   /* overflow */
                "K-1:x\n",                      /* negative length */
                "K:x\n",                        /* no length */
                "K1x:x\n",                      /* junk in length */
                "1K1:x\n",                      /* letter is a digit */
                "\nK1:x\n",                     /* stray newline */
                "U5:a\0b c\n",                  /* NUL inside a string */
                "K99999999999999999999999:x\n", /* length with too many digits */
        };
        static const size_t bad_len[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0 };
        LocalRequest sentinel = { .kind = "untouched" }, out;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                size_t len = bad_len[i] ? bad_len[i] : strlen(bad[i]);
                memcpy(buf, bad[i], len);
                out = sentinel;
                int r = local_request_decode(buf, len, &out);
                if (r != -EBADMSG)
                        fprintf(stderr, "case %zu decoded: %d\n", i, r);
                assert(r == -EBADMSG);
                assert(out.kind == sentinel.kind);
        }

        static const char *bad_reply[] = {
                "s2:ok\ns2:ok\n",
                "K7:mailbox\n",
                "s2:ok",
                "s3:ok\n",
                "f",
        };
        LocalReply rs = { .status = "untouched" }, rout;
        for (size_t i = 0; i < ELEMENTSOF(bad_reply); i++) {
                size_t len = strlen(bad_reply[i]);
                memcpy(buf, bad_reply[i], len);
                rout = rs;
                assert(local_reply_decode(buf, len, &rout) == -EBADMSG);
                assert(rout.status == rs.status);
        }

        /* The empty datagram is a request with nothing in it: callers reject missing fields. */
        assert(local_request_decode(buf, 0, &out) == 0);
        assert(!out.kind);
}

/* Every prefix of a valid encoding but the whole is malformed or decodes to fewer fields: none
 * may read past len. Run under ASan, this catches over-reads. */
static void test_decode_prefixes(void) {
        LocalRequest in = { .kind = "file", .user = "carol", .target = "/tmp/x", .sender = "s@x",
                            .recipient = "carol@x", .offset = 7, .size = 9 }, out;
        char enc[1024];
        size_t full;

        assert(local_request_encode(&in, enc, sizeof enc, &full) == 0);
        for (size_t n = 0; n < full; n++) {
                char *copy = malloc(n + 1);
                assert(copy);
                memcpy(copy, enc, n);
                int r = local_request_decode(copy, n, &out);
                assert(r == 0 || r == -EBADMSG);
                free(copy);
        }
}

int main(void) {
        test_request_roundtrip();
        test_request_optional();
        test_reply_roundtrip();
        test_encode_nobufs();
        test_decode_malformed();
        test_decode_prefixes();
        printf("test-local-proto: ok\n");
        return 0;
}
