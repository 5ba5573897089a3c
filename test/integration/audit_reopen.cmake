# The audit log is reopened on SIGUSR1 (logrotate), nothing lost (fake backend, no runtime).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)
add_test(NAME integration/audit_reopen
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/audit_reopen/run.sh)
set_tests_properties(integration/audit_reopen PROPERTIES LABELS integration TIMEOUT 120
  ENVIRONMENT "${PINLET_IT_ENV};FAKE_BACKEND=$<TARGET_FILE:fake_backend>")
