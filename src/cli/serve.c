/* SPDX-License-Identifier: Apache-2.0 */
/* PLACEHOLDER: replaced by the module owner. */
#include <stdio.h>

#include "cli/cli.h"

int pinlet_cmd_serve(int argc, char **argv)
{
        fprintf(stderr, "pinlet serve: not built yet\n");
        return PINLET_EXIT_FAILURE;
}
