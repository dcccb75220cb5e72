/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * mta-map and mta-alias (postmap and postalias): one implementation, two syntaxes. map_tool_run()
 * returns the exit status: 0 done (or key found), 1 key not found, 2 usage, input or map error; it
 * prints errors as "PROGRAM: FILE:LINE: what" on stderr.
 */

#include "common/map.h"

int map_tool_run(const char *program, MapSyntax syntax, int argc, char **argv);
