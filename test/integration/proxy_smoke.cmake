# SPDX-License-Identifier: Apache-2.0
# Quick self-check of `pinlet serve` against a tiny generic backend (proxy_smoke/probe.c):
# socket handling (stale / foreign / busy), forwarding of every call shape, metadata,
# deadlines, cancellation, 16 MiB messages, backend down and back, SIGTERM.
# The full fake CRI backend suite lives in test/fake.
add_executable(proxy_probe ${CMAKE_CURRENT_LIST_DIR}/proxy_smoke/probe.c)
target_compile_options(proxy_probe PRIVATE ${PINLET_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(proxy_probe PRIVATE pinlet_proxy pinlet_test_grpc PkgConfig::GRPC Threads::Threads)
add_test(NAME fake/proxy_smoke
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/proxy_smoke/run.sh $<TARGET_FILE:pinlet>
                 $<TARGET_FILE:proxy_probe>)
set_tests_properties(fake/proxy_smoke PROPERTIES LABELS "fake" TIMEOUT 120)
