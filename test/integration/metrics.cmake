# SPDX-License-Identifier: Apache-2.0
# Metrics (src/metrics): the exposition of a fully populated struct pinlet_metrics must
# pass `promtool check metrics` with no output at all, and a real Prometheus 2.42 must
# scrape it. Both need the `prometheus` package (packaging/install-deps.sh test) and FAIL,
# not skip, without it.
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_executable(pinlet_it_metrics ${CMAKE_CURRENT_LIST_DIR}/metrics/metrics_serve.c)
target_compile_options(pinlet_it_metrics PRIVATE ${PINLET_WARNINGS} -Wno-missing-prototypes)
target_link_libraries(pinlet_it_metrics PRIVATE pinlet_metrics Threads::Threads)

# Fast and daemon-free: labelled unit as well, so `ctest -L unit` checks the text format.
add_test(NAME integration/metrics_promtool
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/metrics/promtool.sh)
set_tests_properties(integration/metrics_promtool PROPERTIES LABELS "unit;integration"
  TIMEOUT 60 ENVIRONMENT "PINLET_IT_METRICS=$<TARGET_FILE:pinlet_it_metrics>")

add_test(NAME integration/metrics_prometheus
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/metrics/prometheus.sh)
set_tests_properties(integration/metrics_prometheus PROPERTIES LABELS integration TIMEOUT 180
  ENVIRONMENT "${PINLET_IT_ENV};PINLET_IT_METRICS=$<TARGET_FILE:pinlet_it_metrics>")

# The HTTP unit test (test/unit/test_metrics_http.c) fetches with libcurl; test/unit's
# glob links only pinlet_metrics, so the client library is added here (test/ adds unit/
# before integration/, so the target exists).
if(TARGET test_metrics_http)
  target_link_libraries(test_metrics_http PRIVATE PkgConfig::CURL Threads::Threads)
endif()

# The daemon itself with metrics.listen, in front of real containerd and docker-registry,
# scraped by a real Prometheus: decisions equal the audit log, backend_up follows
# containerd, /readyz and /healthz, reloads counted.
add_test(NAME integration/metrics_daemon
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/metrics/daemon.sh)
set_tests_properties(integration/metrics_daemon PROPERTIES LABELS integration RUN_SERIAL TRUE
  TIMEOUT 300 ENVIRONMENT "${PINLET_IT_ENV}")
