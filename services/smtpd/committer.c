/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "services/smtpd/committer.h"

struct Committer {
        sd_event_source *event_source;
        int event_fd;
        CommitMode mode;
        committer_done_t done;
        void *userdata;
        unsigned in_flight;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop;
        CommitJob *pending, **pending_tail;
        CommitJob *finished, **finished_tail;

        /* The queue directory, open since before any message of this process was written: a
         * syncfs() through it reports every write-back error on its file system since the last
         * one (errseq, Linux 5.8), so one syncfs() covers the data of a whole batch and no file
         * needs a sync of its own. Used only by the committer thread. */
        char *syncfs_dir;
        int syncfs_fd;
        bool syncfs_failed;     /* after an error nobody can tell whose data it was: sync each file */
};

static const char *const commit_mode_names[_COMMIT_MODE_MAX] = {
        [COMMIT_SINGLE] = "single",
        [COMMIT_GROUP] = "group",
        [COMMIT_SYNCFS] = "syncfs",
        [COMMIT_AUTO] = "auto",
        [COMMIT_RENAME_SYNCFS] = "rename-syncfs",
};

/* From this many messages in a batch, one syncfs() beats a fdatasync() per file. */
#define AUTO_SYNCFS_MIN 3

const char *commit_mode_to_string(CommitMode m) {
        return m >= 0 && m < _COMMIT_MODE_MAX ? commit_mode_names[m] : NULL;
}

int commit_mode_from_string(const char *s) {
        for (CommitMode m = 0; m < _COMMIT_MODE_MAX; m++)
                if (strcmp(s, commit_mode_names[m]) == 0)
                        return (int) m;
        return -EINVAL;
}

void commit_job_free(CommitJob *j) {
        if (!j)
                return;
        queue_writer_free(j->writer);
        free(j->queue_dir);
        free(j);
}

/* syncfs() reports write-back errors since Linux 5.8; before, it returned 0 whatever happened. */
static bool syncfs_reports_errors(void) {
        struct utsname u;
        unsigned major, minor;

        if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
                return false;
        return major > 5 || (major == 5 && minor >= 8);
}

/* Makes the data of every file in the batch durable with one syncfs(), when the batch is all in
 * the queue directory opened at start. Returns false when the caller must sync each file instead. */
static bool syncfs_batch(Committer *c, CommitJob *batch) {
        if (c->syncfs_fd < 0 || c->syncfs_failed)
                return false;
        for (CommitJob *j = batch; j; j = j->next)
                if (!streq(j->queue_dir, c->syncfs_dir))
                        return false;
        if (syncfs(c->syncfs_fd) < 0) {
                int r = negative_errno();
                for (CommitJob *j = batch; j; j = j->next)
                        if (j->result >= 0)
                                j->result = r;
                /* The error may belong to a file of the next batch, written while this one
                 * synced; from now on every file answers for itself. */
                c->syncfs_failed = true;
        }
        return true;
}

/* Syncs new/ once per distinct queue directory among the batch's jobs that are still fine, and
 * fails those jobs when that fails. */
static void sync_new_dirs(CommitJob *batch) {
        for (CommitJob *j = batch; j; j = j->next) {
                if (j->result < 0)
                        continue;
                bool seen = false;
                for (CommitJob *k = batch; k != j; k = k->next)
                        if (k->result >= 0 && strcmp(k->queue_dir, j->queue_dir) == 0)
                                seen = true;
                if (seen)
                        continue;
                int r = queue_sync_dir(j->queue_dir, QUEUE_NEW);
                if (r < 0)
                        for (CommitJob *k = j; k; k = k->next)
                                if (k->result >= 0 && strcmp(k->queue_dir, j->queue_dir) == 0)
                                        k->result = r;
        }
}

static void sync_batch(Committer *c, CommitJob *batch) {
        if (c->mode == COMMIT_RENAME_SYNCFS) {
                for (CommitJob *j = batch; j; j = j->next)
                        if (j->result >= 0)
                                j->result = queue_writer_link_unsynced(j->writer);
                /* One syncfs() writes the data and the renames. */
                if (syncfs_batch(c, batch))
                        return;
                for (CommitJob *j = batch; j; j = j->next)
                        if (j->result >= 0)
                                j->result = queue_writer_sync(j->writer);
                sync_new_dirs(batch);
                return;
        }

        bool use_syncfs = c->mode == COMMIT_SYNCFS;
        if (c->mode == COMMIT_AUTO) {
                unsigned n = 0;
                for (CommitJob *j = batch; j && n < AUTO_SYNCFS_MIN; j = j->next)
                        n++;
                use_syncfs = n >= AUTO_SYNCFS_MIN;
        }

        /* Data first: a rename must never reach the disk before the data it names. */
        bool data_synced = use_syncfs && syncfs_batch(c, batch);
        if (!data_synced) {
                if (c->mode != COMMIT_SINGLE && batch->next)
                        /* Start write-back of every file first: ext4 then allocates all their
                         * blocks in one journal transaction, the first fdatasync() commits it, and
                         * the others find their data already on disk instead of each forcing a
                         * commit of its own. */
                        for (CommitJob *j = batch; j; j = j->next)
                                (void) sync_file_range(queue_writer_fd(j->writer), 0, 0,
                                                       SYNC_FILE_RANGE_WRITE);
                for (CommitJob *j = batch; j; j = j->next)
                        if (j->result >= 0)
                                j->result = queue_writer_sync(j->writer);
        }
        for (CommitJob *j = batch; j; j = j->next) {
                if (j->result >= 0)
                        /* After syncfs_batch() the data is durable though the writer did not
                         * sync it itself. */
                        j->result = data_synced ? queue_writer_link_unsynced(j->writer)
                                                : queue_writer_link(j->writer);
                if (c->mode == COMMIT_SINGLE && j->result >= 0)
                        j->result = queue_sync_dir(j->queue_dir, QUEUE_NEW);
        }
        if (c->mode == COMMIT_SINGLE)
                return;
        /* Then one fsync of new/ per queue directory in the batch (normally just one). */
        sync_new_dirs(batch);
}

static void *committer_thread(void *p) {
        Committer *c = p;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->pending && !c->stop)
                        pthread_cond_wait(&c->cond, &c->lock);
                if (!c->pending && c->stop)
                        break;
                CommitJob *batch = c->pending;
                c->pending = NULL;
                c->pending_tail = &c->pending;
                pthread_mutex_unlock(&c->lock);

                if (c->mode != COMMIT_SINGLE)
                        sync_batch(c, batch);
                else
                        /* One message at a time, as a per-message design would. */
                        for (CommitJob *j = batch, *next; j; j = next) {
                                next = j->next;
                                j->next = NULL;
                                sync_batch(c, j);
                                j->next = next;
                        }

                pthread_mutex_lock(&c->lock);
                *c->finished_tail = batch;
                while (*c->finished_tail)
                        c->finished_tail = &(*c->finished_tail)->next;
                pthread_mutex_unlock(&c->lock);
                uint64_t one = 1;
                (void) !write(c->event_fd, &one, sizeof one);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static void committer_dispatch(Committer *c) {
        pthread_mutex_lock(&c->lock);
        CommitJob *list = c->finished;
        c->finished = NULL;
        c->finished_tail = &c->finished;
        pthread_mutex_unlock(&c->lock);

        while (list) {
                CommitJob *j = list;
                list = j->next;
                j->next = NULL;
                c->in_flight--;
                c->done(j, c->userdata);
                commit_job_free(j);
        }
}

static int on_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Committer *c = userdata;
        uint64_t v;
        (void) !read(fd, &v, sizeof v);
        committer_dispatch(c);
        return 0;
}

int committer_new(sd_event *e, CommitMode mode, const char *queue_dir, committer_done_t done, void *userdata,
                  Committer **ret) {
        Committer *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->syncfs_fd = -EBADF;
        c->syncfs_dir = strdup(queue_dir);
        if (!c->syncfs_dir) {
                free(c);
                return -ENOMEM;
        }
        /* Without it every file is synced on its own, which is correct, only slower. */
        if (syncfs_reports_errors())
                c->syncfs_fd = open(queue_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        c->mode = mode;
        c->done = done;
        c->userdata = userdata;
        c->pending_tail = &c->pending;
        c->finished_tail = &c->finished;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->event_fd < 0) {
                r = negative_errno();
                committer_free(c);
                return r;
        }
        r = sd_event_add_io(e, &c->event_source, c->event_fd, EPOLLIN, on_event, c);
        if (r < 0) {
                committer_free(c);
                return r;
        }
        /* Completions go before new input, so replies are not held up by busy clients. */
        (void) sd_event_source_set_priority(c->event_source, SD_EVENT_PRIORITY_IMPORTANT);
        r = -pthread_create(&c->thread, NULL, committer_thread, c);
        if (r < 0) {
                committer_free(c);
                return r;
        }
        c->thread_started = true;
        *ret = c;
        return 0;
}

Committer *committer_free(Committer *c) {
        if (!c)
                return NULL;
        if (c->thread_started) {
                pthread_mutex_lock(&c->lock);
                c->stop = true;
                pthread_cond_signal(&c->cond);
                pthread_mutex_unlock(&c->lock);
                pthread_join(c->thread, NULL);
                committer_dispatch(c);
        }
        sd_event_source_disable_unref(c->event_source);
        safe_close(c->event_fd);
        safe_close(c->syncfs_fd);
        free(c->syncfs_dir);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c);
        return NULL;
}

int committer_submit(Committer *c, QueueWriter *writer, const char *queue_dir, void *userdata, CommitJob **ret) {
        CommitJob *j = calloc(1, sizeof *j);
        if (!j) {
                queue_writer_free(writer);
                return -ENOMEM;
        }
        j->writer = writer;
        j->queue_dir = strdup(queue_dir);
        if (!j->queue_dir) {
                commit_job_free(j);
                return -ENOMEM;
        }
        j->userdata = userdata;
        pthread_mutex_lock(&c->lock);
        *c->pending_tail = j;
        c->pending_tail = &j->next;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        c->in_flight++;
        if (ret)
                *ret = j;
        return 0;
}

unsigned committer_in_flight(const Committer *c) {
        return c->in_flight;
}
