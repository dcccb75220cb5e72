/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "common/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/fuzz-main-cf.XXXXXX";
static char path[sizeof dir + 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!path[0]) {
                assert(mkdtemp(dir));
                snprintf(path, sizeof path, "%s/main.cf", dir);
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert(fd >= 0);
        assert(write(fd, data, size) == (ssize_t) size);
        close(fd);

        Config *c = NULL;
        char *error = NULL;
        if (config_load(dir, &c, &error) == 0) {
                char **names = NULL;
                if (config_set_names(c, &names) == 0) {
                        /* Expanding every value exercises $name, ${name?x}, loops and depth. */
                        for (char **n = names; *n; n++)
                                (void) config_get(c, *n);
                        strv_free(names);
                }
                uint64_t v;
                (void) config_get_size(c, "message_size_limit", &v);
                (void) config_get_time(c, "maximal_queue_lifetime", &v);
                config_free(c);
        } else
                assert(!c);
        free(error);
        return 0;
}
