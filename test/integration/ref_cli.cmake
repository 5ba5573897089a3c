# `pinlet ref`: JSON lines, fields and exit codes (no daemons needed).
add_test(NAME integration/ref_cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ref_cli/run.sh $<TARGET_FILE:pinlet>)
set_tests_properties(integration/ref_cli PROPERTIES LABELS "unit" TIMEOUT 60)
