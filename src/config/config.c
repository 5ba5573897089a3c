/* SPDX-License-Identifier: Apache-2.0 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config.h"
#include "util/log.h"

void pinlet_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

size_t pinlet_strv_length(char *const *v)
{
        size_t n = 0;

        while (v && v[n])
                n++;
        return n;
}

int pinlet_strv_push(char ***v, const char *s)
{
        size_t n = pinlet_strv_length(*v);
        char **nv, *copy;

        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(copy);
                return -ENOMEM;
        }
        nv[n] = copy;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

int pinlet_config_init(struct pinlet_config *cfg)
{
        const char *home = getenv("HOME");
        _cleanup_free_ char *user_creds = NULL;

        *cfg = (struct pinlet_config){
                .socket_mode = 0660,
                .socket_uid = (uid_t)-1,
                .socket_gid = (gid_t)-1,
                .max_message_size = PINLET_DEFAULT_MAX_MESSAGE,
                .shutdown_grace_ms = 10000,
                .log_level = PINLET_LOG_INFO,
                .log_format = PINLET_LOG_TEXT,
                .mode = PINLET_MODE_ENFORCE,
                .on_failure = PINLET_FAIL_CLOSED,
                .cache_ttl_ms = 30000,
                .cache_stale_if_error_ms = 600000,
                .cache_negative_ttl_ms = 5000,
                .cache_max_entries = 10000,
                .pins_max_entries = 10000,
                .connect_timeout_ms = 5000,
                .resolve_timeout_ms = 15000,
                .workers = 8,
        };
        cfg->listen = strdup(PINLET_DEFAULT_LISTEN);
        cfg->runtime_endpoint = strdup(PINLET_DEFAULT_RUNTIME);
        cfg->state_dir = strdup(PINLET_DEFAULT_STATE_DIR);
        cfg->audit_file = strdup(PINLET_DEFAULT_AUDIT_LOG);
        if (!cfg->listen || !cfg->runtime_endpoint || !cfg->state_dir || !cfg->audit_file)
                return -ENOMEM;
        if (pinlet_strv_push(&cfg->docker_config_paths, PINLET_DEFAULT_KUBELET_CREDS) < 0)
                return -ENOMEM;
        if (home && *home) {
                if (asprintf(&user_creds, "%s/.docker/config.json", home) < 0)
                        return -ENOMEM;
                if (pinlet_strv_push(&cfg->docker_config_paths, user_creds) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static void scope_free(struct pinlet_scope *s)
{
        pinlet_strv_free(s->registries);
        pinlet_strv_free(s->repositories);
        pinlet_strv_free(s->namespaces);
        *s = (struct pinlet_scope){};
}

static void registry_config_free(struct pinlet_registry_config *r)
{
        free(r->host);
        free(r->ca_file);
        free(r->cert_file);
        free(r->key_file);
        free(r->mirror);
}

void pinlet_config_free(struct pinlet_config *cfg)
{
        free(cfg->path);
        free(cfg->listen);
        free(cfg->runtime_endpoint);
        free(cfg->image_endpoint);
        free(cfg->state_dir);
        free(cfg->audit_file);
        scope_free(&cfg->include);
        scope_free(&cfg->exclude);
        pinlet_strv_free(cfg->docker_config_paths);
        for (size_t i = 0; i < cfg->n_registries; i++)
                registry_config_free(&cfg->registries[i]);
        free(cfg->registries);
        *cfg = (struct pinlet_config){};
}

const struct pinlet_registry_config *pinlet_config_registry(const struct pinlet_config *cfg,
                                                            const char *host)
{
        for (size_t i = 0; i < cfg->n_registries; i++)
                if (strcmp(cfg->registries[i].host, host) == 0)
                        return &cfg->registries[i];
        return NULL;
}

int pinlet_config_load(struct pinlet_config *cfg, const char *path, bool missing_ok,
                       struct pinlet_error **err)
{
        return 0; /* TEMPORARY: the YAML loader lands next */
}

int pinlet_config_validate(const struct pinlet_config *cfg, struct pinlet_error **err)
{
        return 0;
}
