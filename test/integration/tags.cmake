# SPDX-License-Identifier: Apache-2.0
# The runtime's answers keep the tags (tags/run.sh): ImageStatus and ListImages through
# pinlet (enforce) against a second containerd that pulled the same tags directly; the
# RemoveImage of a pinned tag. Real containerd, runc and docker-registry: run serially.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_test(NAME integration/tags COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/tags/run.sh)
set_tests_properties(integration/tags PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300
  ENVIRONMENT "${PINLET_IT_ENV}")
