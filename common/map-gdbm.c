/* SPDX-License-Identifier: MIT */
/*
 * The GDBM backend. Readers open the compiled file by path with GDBM_NOLOCK: a builder never
 * writes into a file that readers may have open; it writes a new file beside it and renames it into
 * place, so a reader keeps its old, complete file until it reopens. Values are stored with their
 * terminating NUL so that the buffer gdbm_fetch() returns is handed to the caller as is, without a
 * second copy; keys are stored without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gdbm.h>

#include "common/map-backend.h"

static int gdbm_error_to_errno(void) {
        switch (gdbm_errno) {
        case GDBM_MALLOC_ERROR:
                return -ENOMEM;
        case GDBM_FILE_OPEN_ERROR:
        case GDBM_FILE_WRITE_ERROR:
        case GDBM_FILE_SEEK_ERROR:
        case GDBM_FILE_READ_ERROR:
        case GDBM_FILE_STAT_ERROR:
        case GDBM_FILE_SYNC_ERROR:
        case GDBM_FILE_TRUNCATE_ERROR:
                return errno > 0 ? -errno : -EIO;
        case GDBM_BAD_MAGIC_NUMBER:
        case GDBM_EMPTY_DATABASE:
        case GDBM_BAD_FILE_OFFSET:
        case GDBM_BAD_BUCKET:
        case GDBM_BAD_HEADER:
        case GDBM_BAD_AVAIL:
        case GDBM_BAD_HASH_TABLE:
        case GDBM_BAD_DIR_ENTRY:
        case GDBM_FILE_CLOSE_ERROR:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static int gdbm_map_open(const char *db_path, Map **ret) {
        _cleanup_close_ int fd = -EBADF;
        Map *m;
        GDBM_FILE dbf;

        fd = open(db_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        dbf = gdbm_fd_open(fd, db_path, 0, GDBM_READER | GDBM_NOLOCK, NULL);
        if (!dbf)
                return gdbm_error_to_errno();
        /* Readers keep GDBM's default bucket cache and mmap: measured against an auto-growing cache,
         * larger fixed caches and GDBM_NOMMAP, it gave the most lookups per CPU second (about 1.1
         * million on 300,000 entries; GDBM_NOMMAP was 3 to 5 times slower). */
        TAKE_FD(fd);      /* gdbm_close() closes it from now on */

        m = calloc(1, sizeof(Map));
        if (!m) {
                gdbm_close(dbf);
                return -ENOMEM;
        }
        m->data = dbf;
        *ret = m;
        return 0;
}

static int value_check(datum d) {
        /* A value is a C string including its NUL; anything else was not written by us. */
        if (d.dsize < 1 || d.dptr[d.dsize - 1] != 0 || memchr(d.dptr, 0, (size_t) d.dsize - 1))
                return -EBADMSG;
        return 0;
}

static int gdbm_map_lookup(Map *m, const char *key, size_t key_len, char **ret_value) {
        datum k = { .dptr = (char *) key, .dsize = (int) key_len };
        datum d;

        if (key_len > INT32_MAX)
                return 0;
        d = gdbm_fetch(m->data, k);
        if (!d.dptr)
                return gdbm_errno == GDBM_ITEM_NOT_FOUND ? 0 : gdbm_error_to_errno();
        if (value_check(d) < 0) {
                free(d.dptr);
                return -EBADMSG;
        }
        *ret_value = d.dptr;
        return 1;
}

static int gdbm_map_iterate(Map *m, map_iterate_cb cb, void *userdata) {
        datum k = gdbm_firstkey(m->data);

        while (k.dptr) {
                _cleanup_free_ char *key = NULL, *value = NULL;
                datum d;
                int r;

                key = realloc(k.dptr, (size_t) k.dsize + 1);
                if (!key) {
                        free(k.dptr);
                        return -ENOMEM;
                }
                key[k.dsize] = 0;
                k.dptr = key;

                d = gdbm_fetch(m->data, k);
                if (!d.dptr)
                        return gdbm_error_to_errno();
                value = d.dptr;
                if (value_check(d) < 0 || memchr(key, 0, (size_t) k.dsize))
                        return -EBADMSG;

                r = cb(key, value, userdata);
                if (r < 0)
                        return r;

                k = gdbm_nextkey(m->data, k);
        }
        return gdbm_errno == GDBM_ITEM_NOT_FOUND || gdbm_errno == GDBM_NO_ERROR ? 0 : gdbm_error_to_errno();
}

static void gdbm_map_close(Map *m) {
        if (m->data)
                gdbm_close(m->data);
}

const MapOps map_gdbm_ops = {
        .type = "gdbm",
        .open = gdbm_map_open,
        .lookup = gdbm_map_lookup,
        .iterate = gdbm_map_iterate,
        .close = gdbm_map_close,
};

struct MapWriter {
        GDBM_FILE dbf;
        int fd;              /* owned by dbf once it is open */
        char *tmp_path;
        char *db_path;
        off_t reserved;      /* bytes allocated ahead for GDBM to write into through its mapping */
        bool mapped;         /* GDBM writes through mmap into the reserved space */
        unsigned stores;
};

/*
 * Why the writer reserves space (measured with tests/bench/map-bench on 1,000,000 entries): GDBM
 * stores each entry where it lands as it is stored. Through plain I/O that is an lseek and two
 * writes per entry, about 9 s on these machines, nearly all of it system-call entry. Through mmap
 * it is a memcpy, but only while the write falls inside the mapped region: GDBM sizes its mapping
 * to what it has written, so a file that grows at its end is unmapped and mapped again on almost
 * every store (slower still). A mapping is made as large as the file when it is switched on, so
 * the writer allocates room first (fallocate, so that a full disk is an error here and not a
 * SIGBUS in a memcpy later), then switches mapping off and on: 1.4 s for the same map.
 *
 * GDBM takes the file size from fstat() only when one of its own writes has invalidated what it
 * last saw, so a throwaway entry is written and deleted between the allocation and the switch.
 * Nothing here is needed for a correct map: if the reservation fails or GDBM stops honouring it,
 * GDBM grows the file itself, only more slowly. The space left over is cut off at commit.
 */
#define RESERVE_MIN      ((off_t) 1 << 20)
#define RESERVE_CHECK    8192U     /* stores between looks at whether GDBM outgrew the reservation */

/* Cannot collide with a map key: keys are text without NUL bytes. */
static const char reserve_probe_key[] = "\0mta-map-reserve";

static int writer_set_mmap(MapWriter *w, int on) {
        if (gdbm_setopt(w->dbf, GDBM_SETMMAP, &on, sizeof(on)) < 0)
                return gdbm_error_to_errno();
        w->mapped = on;
        return 0;
}

static int writer_reserve(MapWriter *w, off_t size) {
        datum k = { .dptr = (char *) reserve_probe_key, .dsize = sizeof(reserve_probe_key) - 1 };
        datum d = { .dptr = (char *) "", .dsize = 1 };
        int r;

        r = writer_set_mmap(w, 0);
        if (r < 0)
                return r;
        r = posix_fallocate(w->fd, 0, size);
        if (r != 0)
                return -r;   /* plain writes from here on; still a correct map */
        w->reserved = size;
        if (gdbm_store(w->dbf, k, d, GDBM_REPLACE) < 0 || gdbm_delete(w->dbf, k) < 0)
                return gdbm_error_to_errno();
        return writer_set_mmap(w, 1);
}

/* After a sync, the standard GDBM header (magic, block size, directory offset and size, directory
 * bits, bucket size and elements, then the next free block) says where the used file ends. */
#define GDBM_STANDARD_MAGIC64  0x13579acfU
#define GDBM_NEXT_BLOCK_OFFSET 32

static int writer_trim(MapWriter *w) {
        uint32_t magic;
        int64_t next_block;
        struct stat st;

        if (w->reserved == 0)
                return 0;
        if (pread(w->fd, &magic, sizeof(magic), 0) != sizeof(magic) ||
            pread(w->fd, &next_block, sizeof(next_block), GDBM_NEXT_BLOCK_OFFSET) != sizeof(next_block))
                return -EIO;
        if (fstat(w->fd, &st) < 0)
                return negative_errno();
        /* Another on-disk format than the one we know: keep the file as it is, unused room and all. */
        if (magic != GDBM_STANDARD_MAGIC64 || next_block <= GDBM_NEXT_BLOCK_OFFSET || next_block > st.st_size)
                return 0;
        if (ftruncate(w->fd, (off_t) next_block) < 0)
                return negative_errno();
        return 0;
}

MapWriter *map_gdbm_writer_abort(MapWriter *w) {
        if (!w)
                return NULL;
        if (w->dbf)
                gdbm_close(w->dbf);
        else
                safe_close(w->fd);
        if (w->tmp_path)
                (void) unlink(w->tmp_path);
        free(w->tmp_path);
        free(w->db_path);
        free(w);
        return NULL;
}

int map_gdbm_writer_new(const char *db_path, int source_fd, MapWriter **ret) {
        _cleanup_(map_gdbm_writer_abortp) MapWriter *w = NULL;
        struct stat st;
        off_t reserve;
        int one = 1, r;

        w = calloc(1, sizeof(MapWriter));
        if (!w)
                return -ENOMEM;
        w->fd = -EBADF;
        w->db_path = strdup(db_path);
        if (!w->db_path || asprintf(&w->tmp_path, "%s.tmpXXXXXX", db_path) < 0) {
                w->tmp_path = NULL;
                return -ENOMEM;
        }
        w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
        if (w->fd < 0) {
                r = negative_errno();
                free(w->tmp_path);
                w->tmp_path = NULL;
                return r;
        }

        /* As postmap: the map gets the read permissions of its source, and when root builds it, the
         * source's owner. For aliases that owner matters: it is whom commands and files run as. */
        if (source_fd >= 0 && fstat(source_fd, &st) == 0) {
                if (fchmod(w->fd, (st.st_mode & 0644) | 0600) < 0)
                        return negative_errno();
                if (geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0) &&
                    fchown(w->fd, st.st_uid, st.st_gid) < 0)
                        return negative_errno();
        } else if (fchmod(w->fd, 0644) < 0)
                return negative_errno();

        w->dbf = gdbm_fd_open(w->fd, w->tmp_path, 0, GDBM_NEWDB | GDBM_NOLOCK | GDBM_NOMMAP, NULL);
        if (!w->dbf)
                return gdbm_error_to_errno();
        /* Buckets stay in a cache that grows with the map, so none is written twice before the sync. */
        (void) gdbm_setopt(w->dbf, GDBM_SETCACHEAUTO, &one, sizeof(one));

        /* A compiled map takes about twice its source; reserve three times, or 1 MiB. */
        reserve = RESERVE_MIN;
        if (source_fd >= 0 && fstat(source_fd, &st) == 0 && st.st_size > reserve / 3)
                reserve = st.st_size * 3;
        r = writer_reserve(w, reserve);
        if (r < 0 && r != -ENOSPC && r != -EOPNOTSUPP && r != -EINVAL)
                return r;

        *ret = TAKE_PTR(w);
        return 0;
}

int map_gdbm_writer_add(MapWriter *w, const char *key, size_t key_len, const char *value, size_t value_len) {
        datum k = { .dptr = (char *) key, .dsize = (int) key_len };
        datum d = { .dptr = (char *) value, .dsize = (int) value_len + 1 };
        int r;

        if (key_len == 0 || key_len > INT32_MAX / 2 || value_len > INT32_MAX / 2)
                return -EINVAL;
        r = gdbm_store(w->dbf, k, d, GDBM_INSERT);
        if (r < 0)
                return gdbm_error_to_errno();

        if (w->reserved > 0 && ++w->stores % RESERVE_CHECK == 0) {
                struct stat st;
                int q;

                /* GDBM grew the file past the reservation: it writes beyond its mapping now. */
                if (fstat(w->fd, &st) < 0)
                        return negative_errno();
                if (st.st_size > w->reserved) {
                        q = writer_reserve(w, st.st_size * 2);
                        if (q < 0 && q != -ENOSPC && q != -EOPNOTSUPP && q != -EINVAL)
                                return q;
                }
        }
        return r;   /* 1: the key exists, its first value stays */
}

int map_gdbm_writer_commit(MapWriter *w) {
        _cleanup_free_ char *dir_copy = NULL;
        _cleanup_close_ int dfd = -EBADF;
        int r;

        if (gdbm_sync(w->dbf) < 0)
                return gdbm_error_to_errno();
        /* Plain I/O again, so that nothing is left in a mapping when the file is cut to size. */
        if (w->mapped) {
                r = writer_set_mmap(w, 0);
                if (r < 0)
                        return r;
        }
        r = writer_trim(w);
        if (r < 0)
                return r;
        if (fsync(w->fd) < 0)
                return negative_errno();
        r = gdbm_close(w->dbf);
        w->dbf = NULL;
        w->fd = -EBADF;
        if (r < 0)
                return gdbm_error_to_errno();

        if (rename(w->tmp_path, w->db_path) < 0)
                return negative_errno();
        free(w->tmp_path);
        w->tmp_path = NULL;

        /* The rename is durable only once the directory is. */
        dir_copy = strdup(w->db_path);
        if (!dir_copy)
                return -ENOMEM;
        dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return negative_errno();
        return 0;
}
