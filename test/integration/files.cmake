# SPDX-License-Identifier: Apache-2.0
# The files pinlet writes (files/run.sh): `pinlet serve` refuses a symbolic link planted
# at the audit log or pins.jsonl and a group-writable state directory, leaving the link's
# target untouched; the pin store on a full disk (a 256 KiB tmpfs, root only: mount)
# keeps the old pin when a record fails and still forgets (files/full_disk.c).
include(${CMAKE_CURRENT_LIST_DIR}/lib/harness.cmake)

add_executable(pinlet_it_full_disk ${CMAKE_CURRENT_LIST_DIR}/files/full_disk.c)
target_compile_options(pinlet_it_full_disk PRIVATE ${PINLET_WARNINGS})
target_link_libraries(pinlet_it_full_disk PRIVATE pinlet_pins)

add_test(NAME integration/files COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/files/run.sh)
# 77: not root, so the full-disk part could not run (CI runs as root: it must not skip)
set_tests_properties(integration/files PROPERTIES LABELS integration TIMEOUT 120
  SKIP_RETURN_CODE 77
  ENVIRONMENT "${PINLET_IT_ENV};FAKE_BACKEND=$<TARGET_FILE:fake_backend>;PINLET_IT_FULL_DISK=$<TARGET_FILE:pinlet_it_full_disk>")
