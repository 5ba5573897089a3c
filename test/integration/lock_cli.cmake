# SPDX-License-Identifier: Apache-2.0
# `pinlet lock` against a real docker-registry on loopback (lock_cli/run.sh): stable
# sorted output, atomic --output, --merge, --check, --from-pins, failures write nothing.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_test(NAME integration/lock_cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/lock_cli/run.sh)
set_tests_properties(integration/lock_cli PROPERTIES LABELS integration TIMEOUT 300
                     ENVIRONMENT "${PINLET_IT_ENV}")
