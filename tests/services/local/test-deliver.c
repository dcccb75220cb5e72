/* SPDX-License-Identifier: MIT */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "services/local/deliver.h"

static void test_translate(void) {
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "/usr/bin/procmail -a \"$extension\"", "/usr/bin/procmail -a \"${EXTENSION}\"" },
                { "x ${user} $home/$shell", "x ${USER} ${HOME}/${SHELL}" },
                { "$sender $recipient $local $domain $original_recipient",
                  "${SENDER} ${RECIPIENT} ${LOCAL} ${DOMAIN} ${ORIGINAL_RECIPIENT}" },
                { "$username $user_x $user1 ${user?x} $USER $ $$ ${",
                  "$username $user_x $user1 ${user?x} $USER $ $$ ${" },
                { "$user$home", "${USER}${HOME}" },
                { "", "" },
                { "no names", "no names" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *t = local_command_translate(cases[i].in);
                assert(t);
                if (!streq(t, cases[i].out)) {
                        fprintf(stderr, "\"%s\" -> \"%s\", want \"%s\"\n", cases[i].in, t, cases[i].out);
                        abort();
                }
                free(t);
        }
}

static void test_user_names(void) {
        static const char *good[] = { "alice", "mtatest-bob", "a.b", "user_1", "Root", "x@y", "a+b" };
        static const char *bad[] = {
                "", ".", "..", ".hidden", "-x", "a/b", "/etc/passwd", "../x", "a b", "a\nb", "a\tb", "a\x7f",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",   /* 65 bytes */
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                assert(local_user_name_valid(good[i]));
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert(!local_user_name_valid(bad[i]));
        assert(!local_user_name_valid(NULL));
}

static void test_request_check(void) {
        LocalOutcome o = {};
        LocalRequest ok = { .kind = "mailbox", .user = "alice", .sender = "", .recipient = "alice@x" };
        assert(local_request_check(&ok, &o) == 0);

        LocalRequest r = ok;
        r.kind = "maildir";
        assert(local_request_check(&r, &o) == -EINVAL && o.status == MAIL_TEMPFAIL);
        r = ok;
        r.sender = NULL;
        assert(local_request_check(&r, &o) == -EINVAL);
        r = ok;
        r.recipient = "";
        assert(local_request_check(&r, &o) == -EINVAL);
        r = ok;
        r.kind = "file";
        r.target = "relative/path";
        assert(local_request_check(&r, &o) == -EINVAL);
        r.target = "/abs/path";
        assert(local_request_check(&r, &o) == 0);
        r = ok;
        r.kind = "command";
        assert(local_request_check(&r, &o) == -EINVAL);
        r.target = "true";
        assert(local_request_check(&r, &o) == 0);
        r = ok;
        r.offset = UINT64_MAX / 2;
        r.size = UINT64_MAX / 2;
        assert(local_request_check(&r, &o) == -EINVAL);
}

int main(void) {
        test_translate();
        test_user_names();
        test_request_check();
        printf("test-deliver: ok\n");
        return 0;
}
