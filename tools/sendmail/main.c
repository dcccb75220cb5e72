/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "common/log.h"
#include "common/macro.h"
#include "tools/sendmail/sendmail.h"

static SendmailArgs arg = {};

static int usage(void) {
        fprintf(stderr,
                "usage: mta-sendmail [-C DIR] [-f SENDER] [-F NAME] [-i] [-t] [-v] [RECIPIENT...]\n"
                "       mta-sendmail -bp | -bi | -bs | -q     (mailq, newaliases, SMTP, flush)\n"
                "See mta-sendmail(1).\n");
        return EX_USAGE;
}

/* Options as Postfix's sendmail takes them; legacy ones are accepted and ignored. Parsing stops
 * at the first recipient, as it does there. Returns -1 to go on, else an exit code. */
static int parse_argv(int argc, char *argv[]) {
        const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        int c;

        if (streq(name, "mailq"))
                arg.mode = SENDMAIL_MAILQ;
        else if (streq(name, "newaliases"))
                arg.mode = SENDMAIL_NEWALIASES;

        opterr = 0;
        while ((c = getopt(argc, argv, "+A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx")) >= 0) {
                switch (c) {
                case 'B':
                        if (strcasecmp(optarg, "8BITMIME") == 0)
                                arg.body_type = "8BITMIME";
                        else if (strcasecmp(optarg, "7BIT") == 0)
                                arg.body_type = "7BIT";
                        else {
                                fprintf(stderr, "mta-sendmail: -B takes 7BIT or 8BITMIME, not %s\n", optarg);
                                return EX_USAGE;
                        }
                        break;
                case 'C':
                        arg.config_dir = optarg;
                        break;
                case 'F':
                        arg.full_name = optarg;
                        break;
                case 'I':
                        arg.mode = SENDMAIL_NEWALIASES;
                        break;
                case 'b':
                        if (streq(optarg, "m"))
                                arg.mode = SENDMAIL_DELIVER;
                        else if (streq(optarg, "p"))
                                arg.mode = SENDMAIL_MAILQ;
                        else if (streq(optarg, "i"))
                                arg.mode = SENDMAIL_NEWALIASES;
                        else if (streq(optarg, "s"))
                                arg.mode = SENDMAIL_SMTP;
                        else if (streq(optarg, "d") || streq(optarg, "D")) {
                                fprintf(stderr, "mta-sendmail: -b%s: the mail system is started by systemd "
                                        "(systemctl start mta.socket)\n", optarg);
                                return EX_USAGE;
                        } else {
                                fprintf(stderr, "mta-sendmail: -b%s is not supported\n", optarg);
                                return EX_USAGE;
                        }
                        break;
                case 'f':
                case 'r':
                        arg.sender = optarg;
                        break;
                case 'o':
                        /* -oi is -i, -oA names the alias database; the other -o options are
                         * sendmail.cf settings, which have no meaning here. */
                        if (streq(optarg, "i"))
                                arg.ignore_dots = true;
                        else if (optarg[0] == 'A' && optarg[1])
                                arg.alias_file = optarg + 1;
                        break;
                case 'i':
                        arg.ignore_dots = true;
                        break;
                case 'q':
                        /* -q flushes; -qR/-qS (one site) flush everything, which includes that site;
                         * -q<interval> is a daemon setting, ignored as Postfix does. */
                        if (!optarg || optarg[0] == 'R' || optarg[0] == 'S')
                                arg.mode = SENDMAIL_FLUSH;
                        break;
                case 't':
                        arg.extract = true;
                        break;
                case 'v':
                        arg.verbose++;
                        break;
                case 'A': case 'G': case 'L': case 'N': case 'O': case 'R': case 'U': case 'V':
                case 'X': case 'c': case 'e': case 'h': case 'm': case 'n': case 'p': case 'x':
                        break;
                default:
                        if (optopt && strchr("ABCFLNORVXbefhopr", optopt))
                                fprintf(stderr, "mta-sendmail: option -%c needs an argument\n", optopt);
                        else
                                fprintf(stderr, "mta-sendmail: unknown option -%c\n", optopt);
                        return usage();
                }
        }
        arg.recipients = argv + optind;
        return -1;
}

int main(int argc, char *argv[]) {
        int r;

        log_setup("mta-sendmail", LOG_TARGET_STDERR);
        r = parse_argv(argc, argv);
        if (r >= 0)
                return r;
        if (arg.verbose > 1)
                log_set_max_level(LOG_DEBUG);
        /* A reader that goes away must give us an error, not kill us half way. */
        (void) signal(SIGPIPE, SIG_IGN);
        return sendmail_run(&arg);
}
