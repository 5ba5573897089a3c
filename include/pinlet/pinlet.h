/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pinlet's public header. The daemon is built from static libraries, one per module
 * (src/<module>); their headers are internal. What is stable for code outside the tree is
 * collected here: the version and, as the plugin ABI lands, include/pinlet/plugin.h.
 */
#pragma once

#define PINLET_VERSION_MAJOR 0
#define PINLET_VERSION_MINOR 1
#define PINLET_VERSION_PATCH 0
