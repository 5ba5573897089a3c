# SPDX-License-Identifier: Apache-2.0
# Shared pieces of the integration harness (lib/common.sh, lib/containerd.sh, and the CRI
# test client in ../cri): helper programs and the environment a driver script needs.
# Every test group that uses the harness does
#   include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)
#   set_tests_properties(<test> PROPERTIES ENVIRONMENT "${PINLET_IT_ENV}" ...)
#
# PINLET_IT_ENV (a list):
#   PINLET_IT_FREE_PORT  free-port helper (common.sh's free_port uses it)
#   PINLET_IT_CRI        pinlet_it_cri, a small CRI command-line client (crictl is not in
#                        Debian): version, pull, image-status, images, rmi, run, ...
#   PINLET_BIN           the pinlet binary under test
#   PINLET_IT_LIB        test/integration/lib (source common.sh etc. from there)
include_guard(GLOBAL)

add_executable(pinlet_it_free_port ${CMAKE_CURRENT_LIST_DIR}/free_port.c)
target_compile_options(pinlet_it_free_port PRIVATE ${PINLET_WARNINGS})

# The test-only CRI schema, the CRI client library and the programs built on it.
add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../cri ${CMAKE_CURRENT_BINARY_DIR}/cri)

set(PINLET_IT_ENV
    "PINLET_IT_FREE_PORT=$<TARGET_FILE:pinlet_it_free_port>"
    "PINLET_IT_CRI=$<TARGET_FILE:pinlet_it_cri>"
    "PINLET_BIN=$<TARGET_FILE:pinlet>"
    "PINLET_IT_LIB=${CMAKE_CURRENT_LIST_DIR}")
