# SPDX-License-Identifier: Apache-2.0
# Image verifiers end to end (verify/run.sh): pinlet in front of real containerd with
# pinlet-verify-sigstore in verifiers.bin_dir, images signed by the project's test signer
# (verify/sign.c, cosign's format) in a local docker-registry; verify/mirror.sh: the same
# plugin reaching an air-gapped registry's signatures through its hosts.toml mirror.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_executable(pinlet_it_sign ${CMAKE_CURRENT_LIST_DIR}/verify/sign.c)
target_compile_options(pinlet_it_sign PRIVATE ${PINLET_WARNINGS} -Wno-deprecated-declarations)
target_link_libraries(pinlet_it_sign PRIVATE PkgConfig::OPENSSL)

add_test(NAME integration/verify/sigstore COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/verify/run.sh)
set_tests_properties(integration/verify/sigstore PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300
  ENVIRONMENT "${PINLET_IT_ENV};PINLET_IT_SIGN=$<TARGET_FILE:pinlet_it_sign>;PINLET_VERIFY_SIGSTORE=$<TARGET_FILE:pinlet-verify-sigstore>")

add_test(NAME integration/verify/contract COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/verify/contract.sh)
set_tests_properties(integration/verify/contract PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300 ENVIRONMENT "${PINLET_IT_ENV}")

add_test(NAME integration/verify/mirror COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/verify/mirror.sh)
set_tests_properties(integration/verify/mirror PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300
  ENVIRONMENT "${PINLET_IT_ENV};PINLET_IT_SIGN=$<TARGET_FILE:pinlet_it_sign>;PINLET_VERIFY_SIGSTORE=$<TARGET_FILE:pinlet-verify-sigstore>")

# pinlet-verify-sigstore --check-policy: no root, no registry, no runtime.
add_test(NAME integration/verify/check_policy
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/verify/check_policy.sh)
set_tests_properties(integration/verify/check_policy PROPERTIES
  LABELS integration TIMEOUT 60
  ENVIRONMENT "${PINLET_IT_ENV};PINLET_VERIFY_SIGSTORE=$<TARGET_FILE:pinlet-verify-sigstore>")
