# SPDX-License-Identifier: Apache-2.0
# Single-flight through the real daemon (singleflight/run.sh): concurrent ImageStatus and
# PullImage bursts for one tag through `pinlet serve` in front of the fake CRI backend,
# against a real docker-registry whose own request log proves that each cold tag (and each
# expiry of the cache TTL) cost exactly one manifest request.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_executable(singleflight_burst ${CMAKE_CURRENT_LIST_DIR}/singleflight/burst.c)
target_compile_options(singleflight_burst PRIVATE ${PINLET_WARNINGS})
target_link_libraries(singleflight_burst PRIVATE pinlet_test_grpc Threads::Threads)

add_test(NAME integration/singleflight
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/singleflight/run.sh)
set_tests_properties(integration/singleflight PROPERTIES
  LABELS integration RUN_SERIAL TRUE TIMEOUT 300
  ENVIRONMENT "${PINLET_IT_ENV};SINGLEFLIGHT_BURST=$<TARGET_FILE:singleflight_burst>;FAKE_BACKEND=$<TARGET_FILE:fake_backend>")
