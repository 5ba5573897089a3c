# SPDX-License-Identifier: Apache-2.0
# Where the runtime pulls (issue 9): containerd with config_path = pinlet's hosts_dir and
# two docker-registry instances (mirrors/run.sh): an air-gapped upstream, a lagging
# mirror, a mirror without the repository, a TLS registry trusted through Docker's
# certificate layout, _default, hosts.toml changes without a restart, and the endpoint
# rules against test/integration/registry's fake registry, and CRI-O's short names through
# the daemon in front of test/fake's backend answering as "cri-o". One ctest per
# case, run serially (containerd and runc are heavy on 2 cores).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

foreach(_case airgap lagging fallthrough tls_certdir default reload endpoints regconf crio_short)
  add_test(NAME integration/mirrors/${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/mirrors/run.sh ${_case})
  set_tests_properties(integration/mirrors/${_case} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 300
    ENVIRONMENT "${PINLET_IT_ENV};REGISTRY_FAKE=$<TARGET_FILE:registry_fake>;FAKE_BACKEND=$<TARGET_FILE:fake_backend>")
endforeach()
