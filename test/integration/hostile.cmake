# SPDX-License-Identifier: Apache-2.0
# The resolver against hostile registries (hostile/run.sh), through `pinlet serve` in
# enforce mode in front of real containerd and docker-registry: one ctest per case.
#   hol           a tarpit holds every resolver worker; calls that need no registry round
#                 trip (cached tag, digest, pinned CreateContainer) still complete
#   per_registry  one registry never holds more than resolver.per_registry connections,
#                 and a cold resolution against a healthy registry is not held behind it
#   error_ttl     a registry that failed is not asked again within cache.error_ttl;
#                 fallbacks (on_failure open, the pin) are taken at once and logged
#   load1000      1000 concurrent mixed calls, every one answered OK
# Programs: hostile_tarpit (the hostile "registry"), hostile_crowd (N concurrent calls).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_executable(hostile_tarpit ${CMAKE_CURRENT_LIST_DIR}/hostile/tarpit.c)
target_compile_options(hostile_tarpit PRIVATE ${PINLET_WARNINGS})
target_link_libraries(hostile_tarpit PRIVATE Threads::Threads)

add_executable(hostile_crowd ${CMAKE_CURRENT_LIST_DIR}/hostile/crowd.c)
target_compile_options(hostile_crowd PRIVATE ${PINLET_WARNINGS})
target_link_libraries(hostile_crowd PRIVATE pinlet_cri_test_proto PkgConfig::GRPC)

foreach(_case hol per_registry error_ttl load1000)
  add_test(NAME integration/hostile/${_case}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/hostile/run.sh ${_case})
  set_tests_properties(integration/hostile/${_case} PROPERTIES
    LABELS integration RUN_SERIAL TRUE TIMEOUT 300
    ENVIRONMENT "${PINLET_IT_ENV};HOSTILE_TARPIT=$<TARGET_FILE:hostile_tarpit>;HOSTILE_CROWD=$<TARGET_FILE:hostile_crowd>")
endforeach()
