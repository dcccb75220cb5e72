/* SPDX-License-Identifier: MIT */
/*
 * Map benchmark (not a test): writes a virtual(5) source with N entries, compiles it with
 * map_build() and runs N random lookups through map_lookup() (one in ten a miss), printing seconds
 * to compile and lookups per second. Usage: map-bench [N] [DIR]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/map.h"

static double clock_seconds(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double now(void) {
        return clock_seconds(CLOCK_MONOTONIC);
}

/* CPU time of this process: on a busy machine wall time measures the neighbours too. */
static double cpu(void) {
        return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

/* xorshift: cheap and reproducible, so runs compare. */
static uint64_t rng = 88172645463325252ULL;
static uint64_t next_random(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

int main(int argc, char **argv) {
        unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
        const char *dir = argc > 2 ? argv[2] : "/tmp";
        _cleanup_free_ char *src = NULL, *error = NULL;
        _cleanup_(map_freep) Map *m = NULL;
        unsigned long found = 0;
        double t0, t1, c0, c1;
        FILE *f;
        int r;

        if (n == 0 || asprintf(&src, "%s/map-bench-virtual.%d", dir, (int) getpid()) < 0)
                return 2;

        f = fopen(src, "we");
        if (!f)
                return perror("fopen"), 2;
        for (unsigned long i = 0; i < n; i++)
                fprintf(f, "user%lu@domain%lu.example\tmailbox%lu@remote%lu.example\n", i, i % 1000, i, i % 97);
        if (fclose(f) != 0)
                return perror("fclose"), 2;

        t0 = now();
        c0 = cpu();
        r = map_build(src, MAP_SYNTAX_POSTMAP, &error);
        c1 = cpu();
        t1 = now();
        if (r < 0) {
                fprintf(stderr, "map_build: %s\n", error ? error : strerror(-r));
                return 2;
        }
        printf("entries:        %lu\n", n);
        printf("compile:        %.3f s (%.3f s CPU)\n", t1 - t0, c1 - c0);

        r = map_open(src, &m);
        if (r < 0) {
                fprintf(stderr, "map_open: %s\n", strerror(-r));
                return 2;
        }

        t0 = now();
        c0 = cpu();
        for (unsigned long i = 0; i < n; i++) {
                char key[64];
                unsigned long k = next_random() % (n + n / 9);   /* about one in ten misses */
                char *v = NULL;

                snprintf(key, sizeof(key), "user%lu@domain%lu.example", k, k % 1000);
                r = map_lookup(m, key, &v);
                if (r < 0) {
                        fprintf(stderr, "map_lookup: %s\n", strerror(-r));
                        return 2;
                }
                if (r > 0) {
                        found++;
                        free(v);
                }
        }
        c1 = cpu();
        t1 = now();
        printf("lookups:        %lu (%lu found)\n", n, found);
        printf("lookup time:    %.3f s (%.3f s CPU)\n", t1 - t0, c1 - c0);
        printf("lookups/s:      %.0f (%.0f per CPU second)\n", (double) n / (t1 - t0), (double) n / (c1 - c0));

        {
                _cleanup_free_ char *db = NULL;
                if (map_ref_db_path(src, &db) == 0)
                        (void) unlink(db);
                (void) unlink(src);
        }
        return 0;
}
