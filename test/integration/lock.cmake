# SPDX-License-Identifier: Apache-2.0
# Lock files end to end against real containerd + runc + docker-registry (lock/run.sh):
# one ctest per case, each in its own private directory with its own daemons, run
# serially (containerd and runc are heavy on 2 cores).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

foreach(_case locked registry_down require_enforce configmap_swap broken_edit two_nodes startup)
  add_test(NAME integration/lock/${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/lock/run.sh ${_case})
  set_tests_properties(integration/lock/${_case} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 300
    ENVIRONMENT "${PINLET_IT_ENV}")
endforeach()
