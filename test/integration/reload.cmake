# SPDX-License-Identifier: Apache-2.0
# Live reload (SIGHUP) under load against real containerd and docker-registry
# (reload/run.sh): one ctest per case, run serially.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

foreach(_case stress keys)
  add_test(NAME integration/reload/${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/reload/run.sh ${_case})
  set_tests_properties(integration/reload/${_case} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 600
    ENVIRONMENT "${PINLET_IT_ENV};HOSTILE_CROWD=$<TARGET_FILE:hostile_crowd>")
endforeach()
