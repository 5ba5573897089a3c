# SPDX-License-Identifier: Apache-2.0
# Proxy transparency against the fake CRI backend (label `fake`): the same call made
# directly to test/fake/fake_backend and through `pinlet serve` must look identical on
# both ends. One cmocka executable, one ctest entry per group (each group starts its own
# processes in a private temporary directory, so the groups may run in parallel).
add_executable(test_proxy_fake ${CMAKE_CURRENT_LIST_DIR}/proxy_fake/test_proxy_fake.c)
target_compile_options(test_proxy_fake PRIVATE ${PINLET_WARNINGS})
target_link_libraries(test_proxy_fake PRIVATE pinlet_test_grpc PkgConfig::CMOCKA
                      PkgConfig::JANSSON Threads::Threads)
# the binaries under test are built first
add_dependencies(test_proxy_fake fake_backend pinlet)

foreach(_group passthrough backend_down backend_killed sigterm)
  add_test(NAME fake/proxy_${_group}
           COMMAND test_proxy_fake ${_group} $<TARGET_FILE:pinlet> $<TARGET_FILE:fake_backend>)
  set_tests_properties(fake/proxy_${_group} PROPERTIES LABELS fake TIMEOUT 300)
endforeach()
