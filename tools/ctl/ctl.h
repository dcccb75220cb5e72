/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * mtactl subcommands. main.c parses the global options (-c DIR, -h), loads main.cf (a missing
 * main.cf gives the defaults) and calls one of these with argv[0] set to the subcommand name and
 * getopt reset (optind = 0), so each subcommand parses its own options with getopt(). Each returns
 * the process exit status: 0 success, 1 problems found / not found, 2 usage or input error.
 * Messages go to stderr as "mtactl: ...".
 *
 * ctl-config.c: config (postconf), ctl-check.c: check (postfix check), ctl-queue.c: queue, flush,
 * status; ctl-systemd.c: start/stop/reload/abort, mapped onto systemctl.
 */

#include "common/config.h"

int ctl_config(const Config *c, int argc, char **argv);
int ctl_check(const Config *c, int argc, char **argv);
int ctl_queue(const Config *c, int argc, char **argv);
int ctl_flush(const Config *c, int argc, char **argv);
int ctl_status(const Config *c, int argc, char **argv);
/* verb: "start", "stop", "reload" or "abort"; argv[0] is the same word. */
int ctl_systemd(const Config *c, const char *verb, int argc, char **argv);
