# `pinlet pins` against prepared pin stores (no daemons needed): table, JSON lines,
# damaged lines reported, read-only (no lock, no rewrite), usage errors.
add_test(NAME integration/pins_cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/pins_cli/run.sh $<TARGET_FILE:pinlet>)
set_tests_properties(integration/pins_cli PROPERTIES LABELS "unit" TIMEOUT 60)
