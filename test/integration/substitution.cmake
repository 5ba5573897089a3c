# SPDX-License-Identifier: Apache-2.0
# Tag-to-digest substitution end to end against real containerd + runc + docker-registry
# (substitution/run.sh): one ctest per case, each in its own private directory with its
# own daemons, run serially (containerd and runc are heavy on 2 cores).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

foreach(_case pull run tag_moved kubelet_flow auth_basic auth_bearer registry_down restart scope)
  add_test(NAME integration/substitution/${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/substitution/run.sh ${_case})
  set_tests_properties(integration/substitution/${_case} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 300
    ENVIRONMENT "${PINLET_IT_ENV};REGISTRY_TOKEN_SERVER=$<TARGET_FILE:registry_token_server>")
endforeach()
