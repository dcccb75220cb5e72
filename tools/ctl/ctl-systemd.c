/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "common/macro.h"
#include "tools/ctl/ctl.h"

/* Every unit of the mail system; mta-local@*.service matches the per-connection delivery instances
 * that are loaded (systemctl expands the pattern). */
#define UNITS_SOCKETS "mta.socket", "mta-submit.socket", "mta-local.socket"
#define UNITS_TRIGGERS "mta-queue.path", "mta-queue.timer"
#define UNITS_SERVICES "mta-smtpd.service", "mta-queue.service", "mta-local@*.service"

/* Runs systemctl with the given arguments (no shell), found on PATH; returns its exit status, or 1
 * when it could not run or was killed. */
static int systemctl(char **args) {
        pid_t pid;
        int status;

        fflush(stdout);
        pid = fork();
        if (pid < 0) {
                fprintf(stderr, "mtactl: fork: %m\n");
                return 1;
        }
        if (pid == 0) {
                execvp(args[0], args);
                fprintf(stderr, "mtactl: cannot run %s: %m\n", args[0]);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        fprintf(stderr, "mtactl: waitpid: %m\n");
                        return 1;
                }
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 1;
}

int ctl_systemd(const Config *c, const char *verb, int argc, char **argv) {
        char *start[] = { (char *) "systemctl", (char *) "start", UNITS_SOCKETS, UNITS_TRIGGERS, NULL };
        char *stop[] = { (char *) "systemctl", (char *) "stop", UNITS_SOCKETS, UNITS_TRIGGERS,
                         UNITS_SERVICES, NULL };
        char *reload[] = { (char *) "systemctl", (char *) "try-reload-or-restart",
                           (char *) "mta-smtpd.service", NULL };
        char *kill_services[] = { (char *) "systemctl", (char *) "kill", (char *) "--signal=SIGKILL",
                                  UNITS_SERVICES, NULL };
        int r;

        if (argc > 1) {
                fprintf(stderr, "mtactl: %s takes no arguments\n", verb);
                return 2;
        }

        if (streq(verb, "start"))
                r = systemctl(start);
        else if (streq(verb, "stop"))
                r = systemctl(stop);
        else if (streq(verb, "reload"))
                r = systemctl(reload);
        else if (streq(verb, "abort")) {
                /* Kill at once, then stop the units, so that nothing starts the services again. A kill
                 * of services that are not running fails; that is no reason to skip the stop. */
                (void) systemctl(kill_services);
                r = systemctl(stop);
        } else {
                fprintf(stderr, "mtactl: unknown command '%s'\n", verb);
                return 2;
        }

        if (r != 0) {
                if (sd_booted() <= 0)
                        fprintf(stderr,
                                "mtactl: %s failed: systemd is not running; run the programs by hand "
                                "(see mtactl(8))\n",
                                verb);
                else
                        fprintf(stderr, "mtactl: %s failed: systemctl exited with status %d\n", verb, r);
                return 1;
        }
        return 0;
}
