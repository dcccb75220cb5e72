/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "services/smtpd/committer.h"

struct Committer {
        sd_event_source *event_source;
        int event_fd;
        bool group;
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
};

void commit_job_free(CommitJob *j) {
        if (!j)
                return;
        queue_writer_free(j->writer);
        free(j->queue_dir);
        free(j);
}

static void sync_batch(Committer *c, CommitJob *batch) {
        /* Files first: a rename must never reach the disk before the data it names. */
        for (CommitJob *j = batch; j; j = j->next) {
                j->result = queue_writer_sync(j->writer);
                if (j->result >= 0)
                        j->result = queue_writer_link(j->writer);
                if (!c->group && j->result >= 0)
                        j->result = queue_sync_dir(j->queue_dir, QUEUE_NEW);
        }
        if (!c->group)
                return;
        /* Then one fsync of new/ per queue directory in the batch (normally just one). */
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

                if (c->group)
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

int committer_new(sd_event *e, bool group, committer_done_t done, void *userdata, Committer **ret) {
        Committer *c;
        int r;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->group = group;
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
