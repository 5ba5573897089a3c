# The command line's contract (no daemons needed).
add_test(NAME integration/cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/run.sh $<TARGET_FILE:pinlet> ${PROJECT_SOURCE_DIR})
set_tests_properties(integration/cli PROPERTIES LABELS "unit" TIMEOUT 60)
