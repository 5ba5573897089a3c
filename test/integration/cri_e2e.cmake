# SPDX-License-Identifier: Apache-2.0
# CRI end-to-end against real containerd + runc + docker-registry on loopback: the same
# CRI sequence directly and through pinlet (mode off: pass-through) must give the same
# results, and pinlet must survive a containerd crash and restart. The programs are
# built in cri/CMakeLists.txt (via lib/harness.cmake); cri/run.sh drives the test.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_test(NAME integration/cri_e2e COMMAND ${CMAKE_CURRENT_LIST_DIR}/cri/run.sh)
set_tests_properties(integration/cri_e2e PROPERTIES
  LABELS integration TIMEOUT 600 RUN_SERIAL TRUE
  ENVIRONMENT "${PINLET_IT_ENV};PINLET_CRI_E2E=$<TARGET_FILE:cri_e2e>")

# The harness itself: a test that dies with a pod running and containerd killed leaves
# no process, mount, shim socket or directory behind.
add_test(NAME integration/harness_cleanup COMMAND ${CMAKE_CURRENT_LIST_DIR}/cri/cleanup_check.sh)
set_tests_properties(integration/harness_cleanup PROPERTIES
  LABELS integration TIMEOUT 300 RUN_SERIAL TRUE ENVIRONMENT "${PINLET_IT_ENV}")
