/* SPDX-License-Identifier: MIT */
/* The group commit of mailbox.h: several messages under one lock and one fsync, each with its own
 * outcome, the journal naming the size before the group, nothing uncommitted left behind. */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "services/local/mailbox.h"

static int queue_file(const char *content) {
        int fd = memfd_create("queue", MFD_CLOEXEC);
        assert(fd >= 0);
        assert(write(fd, content, strlen(content)) == (ssize_t) strlen(content));
        return fd;
}

static uint64_t file_size(int dir_fd, const char *name) {
        struct stat st;
        assert(fstatat(dir_fd, name, &st, 0) == 0);
        return (uint64_t) st.st_size;
}

static char *read_all(int dir_fd, const char *name) {
        int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        assert(fd >= 0);
        char *buf = calloc(1, 65536);
        assert(buf);
        assert(read(fd, buf, 65535) >= 0);
        close(fd);
        return buf;
}

/* Appends content (all of it, from offset 0) and returns the status. */
static MailStatus append(MailboxGroup *g, const char *content, uint64_t announced, MailboxOutcome *mo) {
        int q = queue_file(content);
        MboxEnvelope env = { .sender = "s@example.test", .recipient = "r@example.test", .date = 0 };
        assert(mailbox_group_append(g, q, 0, announced, &env, mo) == 0);
        close(q);
        return mo->status;
}

int main(void) {
        char dir[] = "/tmp/test-mailbox-group-XXXXXX";
        MailboxOptions o = {
                .dotlock = true,
                .fcntl_lock = true,
                .check_owner = true,
                .owner = getuid(),
                .lock_attempts = 1,
                .lock_delay_usec = 1000,
                .stale_lock_sec = 300,
                .mbox_flags = MBOX_QUOTE_FROM | MBOX_BLANK_LINE,
        };
        MailboxOutcome mo;
        MailboxGroup g;

        assert(mkdtemp(dir));
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert(dfd >= 0);

        /* One message on its own, through the one-message wrapper. */
        {
                int q = queue_file("Subject: zero\n\nx\n");
                MboxEnvelope env = { .sender = "s@example.test", .recipient = "r@example.test" };
                assert(mailbox_append(dfd, "box", &o, q, 0, 17, &env, &mo) == 0);
                assert(mo.status == MAIL_OK && streq(mo.dsn, "2.0.0"));
                close(q);
        }
        uint64_t before = file_size(dfd, "box");
        assert(faccessat(dfd, "box.lock", F_OK, 0) < 0);

        /* A group: the limit counts what the group has appended already; a message that does not fit
         * or whose queue file is short fails alone. */
        o.size_limit = before + 400;     /* three small messages of about 125 bytes, not four */
        assert(mailbox_group_open(&g, dfd, "box", &o, &mo) == 1);
        assert(faccessat(dfd, "box.lock", F_OK, 0) == 0);
        assert(append(&g, "Subject: one\n\nx\n", 16, &mo) == MAIL_OK);
        uint64_t one = g.size - before;
        assert(one > 100 && one < 140);
        {
                /* The journal names the size before the group, not after its first message. */
                char *lock = read_all(dfd, "box.lock"), want[64];
                snprintf(want, sizeof want, " %" PRIu64 "\n", before);
                assert(strstr(lock, "mta-local "));
                assert(strlen(lock) > strlen(want) && streq(lock + strlen(lock) - strlen(want), want));
                free(lock);
        }
        char big[400];
        memset(big, 'b', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        memcpy(big, "Subject: big\n\n", 14);
        assert(append(&g, big, strlen(big), &mo) == MAIL_PERMFAIL && streq(mo.dsn, "5.2.2"));
        assert(append(&g, "Subject: short\n\nx\n", 500, &mo) == MAIL_TEMPFAIL && streq(mo.dsn, "4.3.0"));
        assert(append(&g, "Subject: two\n\nx\n", 16, &mo) == MAIL_OK);
        assert(append(&g, "Subject: three\n\nx\n", 18, &mo) == MAIL_OK);
        /* Three small ones have reached the limit. */
        assert(append(&g, "Subject: four\n\nx\n", 17, &mo) == MAIL_PERMFAIL && streq(mo.dsn, "5.2.2"));
        assert(mailbox_group_commit(&g) == 0);
        mailbox_group_close(&g);
        assert(faccessat(dfd, "box.lock", F_OK, 0) < 0);
        char *data = read_all(dfd, "box");
        assert(file_size(dfd, "box") == g.size);
        const char *p1 = strstr(data, "Subject: one"), *p2 = strstr(data, "Subject: two"),
                   *p3 = strstr(data, "Subject: three");
        assert(strstr(data, "Subject: zero") && p1 && p2 && p3 && p1 < p2 && p2 < p3);
        assert(!strstr(data, "Subject: big") && !strstr(data, "Subject: short") && !strstr(data, "four"));
        free(data);

        /* Appended but never committed: cut off at close. */
        uint64_t committed = file_size(dfd, "box");
        o.size_limit = 0;
        assert(mailbox_group_open(&g, dfd, "box", &o, &mo) == 1);
        assert(append(&g, "Subject: five\n\nx\n", 17, &mo) == MAIL_OK);
        assert(file_size(dfd, "box") > committed);
        mailbox_group_close(&g);
        assert(file_size(dfd, "box") == committed);
        assert(faccessat(dfd, "box.lock", F_OK, 0) < 0);

        /* The lock names its holder from the moment it exists (it is linked into place with its
         * content), and the file it was made as is gone; one left by a dead process that had our
         * pid is taken over. */
        {
                char tmpname[64];
                snprintf(tmpname, sizeof tmpname, ".box.lock.%d", (int) getpid());
                int t = openat(dfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                assert(t >= 0);
                close(t);
                assert(mailbox_group_open(&g, dfd, "box", &o, &mo) == 1);
                char *lock = read_all(dfd, "box.lock"), want[64];
                snprintf(want, sizeof want, "%d\nmta-local", (int) getpid());
                assert(strncmp(lock, want, strlen(want)) == 0);
                free(lock);
                assert(faccessat(dfd, tmpname, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
                mailbox_group_close(&g);
                assert(faccessat(dfd, "box.lock", F_OK, 0) < 0);
                assert(file_size(dfd, "box") == committed);
        }

        /* A lock held elsewhere: the open fails with a tempfail, nothing is written. */
        int lfd = openat(dfd, "box.lock", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert(lfd >= 0);
        char text[32];
        int n = snprintf(text, sizeof text, "%d\n", (int) getpid());
        assert(write(lfd, text, (size_t) n) == n);
        close(lfd);
        assert(mailbox_group_open(&g, dfd, "box", &o, &mo) == 0);
        assert(mo.status == MAIL_TEMPFAIL && streq(mo.dsn, "4.2.0"));
        assert(file_size(dfd, "box") == committed);
        {
                /* Waiting for it left nothing behind. */
                char tmpname[64];
                snprintf(tmpname, sizeof tmpname, ".box.lock.%d", (int) getpid());
                assert(faccessat(dfd, tmpname, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT);
        }

        assert(unlinkat(dfd, "box.lock", 0) == 0);
        assert(unlinkat(dfd, "box", 0) == 0);
        close(dfd);
        assert(rmdir(dir) == 0);
        return 0;
}
