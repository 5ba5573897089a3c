/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by hosts.c and regconf.c; not for other modules. */
#pragma once

#include <dirent.h>
#include <stdbool.h>

#include "hosts/hosts.h"

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

/* A new list with one reference, or NULL. */
struct pinlet_hosts_list *pinlet_hosts_list_new(void);
/* A zeroed endpoint appended to l; NULL past PINLET_HOSTS_ENDPOINTS_MAX or out of memory. */
struct pinlet_hosts_endpoint *pinlet_hosts_list_add(struct pinlet_hosts_list *l);
/* url, host and path of e from a server/host/location string; -EINVAL when it is not a
 * registry URL, -ENOMEM. */
int pinlet_hosts_endpoint_set_url(struct pinlet_hosts_endpoint *e, const char *url,
                                  bool override_path);
int pinlet_hosts_strv_push(char ***v, const char *s);
/* ret_dirs[0] = <hosts_dir>/<registry>, ret_dirs[1] = <hosts_dir>/_default (owned);
 * -EINVAL for a registry name that is not a single path component. */
int pinlet_hosts_containerd_dirs(const char *hosts_dir, const char *registry, char **ret_dirs);
