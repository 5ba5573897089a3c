/* SPDX-License-Identifier: Apache-2.0 */
/* The only place that exits the process: everything below returns an exit code. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
        return pinlet_cli_main(argc, argv);
}
