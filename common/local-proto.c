/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "common/local-proto.h"
#include "common/macro.h"
#include "common/record.h"

/* Strings travel as record bytes; a NUL inside one would silently cut it short on the other side,
 * so the encoder refuses it instead of sending something the receiver would read differently. */
static int put_str(char *buf, size_t size, size_t *pos, char type, const char *s) {
        if (!s)
                return 0;
        return record_put_string(buf, size, pos, type, s);
}

int local_request_encode(const LocalRequest *r, char *buf, size_t size, size_t *ret_len) {
        size_t pos = 0;
        int k;

        if (!r || !buf || !ret_len)
                return -EINVAL;
        if ((k = put_str(buf, size, &pos, 'K', r->kind)) < 0 ||
            (k = put_str(buf, size, &pos, 'U', r->user)) < 0 ||
            (k = put_str(buf, size, &pos, 'T', r->target)) < 0 ||
            (k = put_str(buf, size, &pos, 'S', r->sender)) < 0 ||
            (k = put_str(buf, size, &pos, 'R', r->recipient)) < 0 ||
            (k = put_str(buf, size, &pos, 'O', r->original)) < 0 ||
            (k = put_str(buf, size, &pos, 'X', r->extension)) < 0 ||
            (k = put_str(buf, size, &pos, 'Q', r->queue_id)) < 0 ||
            (k = record_put_u64(buf, size, &pos, 'A', r->arrival)) < 0 ||
            (k = record_put_u64(buf, size, &pos, 'o', r->offset)) < 0 ||
            (k = record_put_u64(buf, size, &pos, 'n', r->size)) < 0 ||
            (k = put_str(buf, size, &pos, 'F', r->flags)) < 0)
                return k;
        *ret_len = pos;
        return 0;
}

int local_reply_encode(const LocalReply *r, char *buf, size_t size, size_t *ret_len) {
        size_t pos = 0;
        int k;

        if (!r || !buf || !ret_len)
                return -EINVAL;
        if ((k = put_str(buf, size, &pos, 's', r->status)) < 0 ||
            (k = put_str(buf, size, &pos, 'd', r->dsn)) < 0 ||
            (k = put_str(buf, size, &pos, 'r', r->text)) < 0 ||
            (k = put_str(buf, size, &pos, 'f', r->forward)) < 0)
                return k;
        *ret_len = pos;
        return 0;
}

/* Records are "T<len>:<bytes>\n", so the byte after a record's data is its "\n": overwriting it
 * with NUL terminates the string in place without moving anything. A NUL inside the data would
 * make the C string shorter than the record, so it is malformed here. */
static int take_string(char *buf, const Record *rec, const char **field) {
        char *p = buf + (rec->data - buf);

        if (*field)
                return -EBADMSG;
        if (memchr(rec->data, '\0', rec->len))
                return -EBADMSG;
        p[rec->len] = '\0';
        *field = p;
        return 0;
}

static int take_u64(const Record *rec, uint64_t *field, unsigned *seen, unsigned bit) {
        uint64_t v;

        if (*seen & bit)
                return -EBADMSG;
        if (record_parse_u64(rec, &v) < 0)
                return -EBADMSG;
        *field = v;
        *seen |= bit;
        return 0;
}

/* Checks the whole buffer before anything is taken: take_string() overwrites each record's "\n",
 * which record_next() must see, so strings are NUL-terminated only after every record checked out. */
static int check_letters(const char *buf, size_t len, const char *allowed) {
        size_t pos = 0;
        Record rec;
        int k;

        while ((k = record_next(buf, len, &pos, &rec)) > 0)
                if (!strchr(allowed, rec.type))
                        return -EBADMSG;
        return k < 0 ? -EBADMSG : 0;
}

int local_request_decode(char *buf, size_t len, LocalRequest *ret) {
        LocalRequest r = {};
        unsigned seen = 0;
        size_t pos = 0;
        Record rec;
        int k;

        if (!buf || !ret)
                return -EINVAL;
        if (check_letters(buf, len, "KUTSROXQAonF") < 0)
                return -EBADMSG;
        while (record_next(buf, len, &pos, &rec) > 0) {
                switch (rec.type) {
                case 'K': k = take_string(buf, &rec, &r.kind); break;
                case 'U': k = take_string(buf, &rec, &r.user); break;
                case 'T': k = take_string(buf, &rec, &r.target); break;
                case 'S': k = take_string(buf, &rec, &r.sender); break;
                case 'R': k = take_string(buf, &rec, &r.recipient); break;
                case 'O': k = take_string(buf, &rec, &r.original); break;
                case 'X': k = take_string(buf, &rec, &r.extension); break;
                case 'Q': k = take_string(buf, &rec, &r.queue_id); break;
                case 'F': k = take_string(buf, &rec, &r.flags); break;
                case 'A': k = take_u64(&rec, &r.arrival, &seen, 1u << 0); break;
                case 'o': k = take_u64(&rec, &r.offset, &seen, 1u << 1); break;
                case 'n': k = take_u64(&rec, &r.size, &seen, 1u << 2); break;
                default: k = -EBADMSG;
                }
                if (k < 0)
                        return k;
        }
        *ret = r;
        return 0;
}

int local_reply_decode(char *buf, size_t len, LocalReply *ret) {
        LocalReply r = {};
        size_t pos = 0;
        Record rec;
        int k;

        if (!buf || !ret)
                return -EINVAL;
        if (check_letters(buf, len, "sdrf") < 0)
                return -EBADMSG;
        while (record_next(buf, len, &pos, &rec) > 0) {
                switch (rec.type) {
                case 's': k = take_string(buf, &rec, &r.status); break;
                case 'd': k = take_string(buf, &rec, &r.dsn); break;
                case 'r': k = take_string(buf, &rec, &r.text); break;
                case 'f': k = take_string(buf, &rec, &r.forward); break;
                default: k = -EBADMSG;
                }
                if (k < 0)
                        return k;
        }
        *ret = r;
        return 0;
}

int local_proto_send_with_fd(int sock, const char *buf, size_t len, int fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (char *) buf, .iov_len = len };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof control,
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        ssize_t n;

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        return (size_t) n == len ? 0 : -EIO;
}
