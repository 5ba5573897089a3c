# SPDX-License-Identifier: Apache-2.0
# The registry client (src/registry) and `pinlet resolve` against real docker-registry
# (plain HTTP, TLS with a test CA and client certificates, htpasswd Basic auth, Bearer
# token auth with a test token server) and against a misbehaving fake registry.
if(NOT TARGET PkgConfig::PINLET_REG_MHD)
  pkg_check_modules(PINLET_REG_MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
endif()
set(_regdir ${CMAKE_CURRENT_LIST_DIR}/registry)

add_executable(registry_token_server ${_regdir}/token_server.c)
target_compile_options(registry_token_server PRIVATE ${PINLET_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(registry_token_server PRIVATE PkgConfig::PINLET_REG_MHD PkgConfig::OPENSSL
                      PkgConfig::JANSSON)

add_executable(registry_fake ${_regdir}/fake_registry.c)
target_compile_options(registry_fake PRIVATE ${PINLET_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(registry_fake PRIVATE PkgConfig::PINLET_REG_MHD PkgConfig::OPENSSL)

add_executable(registry_probe ${_regdir}/registry_probe.c)
target_compile_options(registry_probe PRIVATE ${PINLET_WARNINGS} -Wno-missing-prototypes)
# the probe builds the client from a config file the way the CLI does
target_link_libraries(registry_probe PRIVATE pinlet_cli pinlet_registry Threads::Threads)

foreach(_case plain tls basic bearer fake)
  add_test(NAME integration/registry/${_case}
           COMMAND bash ${_regdir}/run.sh ${_case})
  set_tests_properties(integration/registry/${_case} PROPERTIES
    LABELS integration TIMEOUT 300
    ENVIRONMENT "PINLET_BIN=$<TARGET_FILE:pinlet>;REGISTRY_PROBE=$<TARGET_FILE:registry_probe>;REGISTRY_TOKEN_SERVER=$<TARGET_FILE:registry_token_server>;REGISTRY_FAKE=$<TARGET_FILE:registry_fake>")
endforeach()
