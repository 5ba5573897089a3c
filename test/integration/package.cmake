# SPDX-License-Identifier: Apache-2.0
# The Debian package on this machine: cpack builds it from this build directory, then
# install, upgrade over an edited conffile, remove and purge, leaving nothing behind.
# Root only (skipped otherwise); never touches a pinlet installed by anyone else.
add_test(NAME integration/package
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/package/run.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_VERSION})
# RUN_SERIAL: dpkg takes a machine-wide lock, and the file list compares the whole system.
set_tests_properties(integration/package PROPERTIES LABELS "integration" TIMEOUT 900
                     SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
