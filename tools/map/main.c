/* SPDX-License-Identifier: MIT */
/* mta-map and mta-alias: the same main, built twice with MTA_MAP_ALIASES set to 0 or 1. */
#include "common/log.h"
#include "tools/map/map-tool.h"

int main(int argc, char **argv) {
#if MTA_MAP_ALIASES
        const char *program = "mta-alias";
        MapSyntax syntax = MAP_SYNTAX_ALIASES;
#else
        const char *program = "mta-map";
        MapSyntax syntax = MAP_SYNTAX_POSTMAP;
#endif
        /* An administrator's command: messages belong on the terminal, not in the journal. */
        log_setup(program, LOG_TARGET_STDERR);
        return map_tool_run(program, syntax, argc, argv);
}
