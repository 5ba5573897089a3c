# SPDX-License-Identifier: Apache-2.0
# kubelet credential provider plugins end to end (credprov/run.sh): htpasswd
# docker-registry, containerd and pinlet with a test provider (credprov/provider.sh).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_test(NAME integration/credprov/image_status
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/credprov/run.sh)
set_tests_properties(integration/credprov/image_status PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300 ENVIRONMENT "${PINLET_IT_ENV}")
