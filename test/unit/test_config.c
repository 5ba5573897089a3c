/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "config/config.h"
#include "util/log.h"

static int load(struct pinlet_config *cfg, const char *yaml, struct pinlet_error **err)
{
        assert_int_equal(pinlet_config_init(cfg), 0);
        return pinlet_config_load_buffer(cfg, "test.yaml", yaml, strlen(yaml), err);
}

static void test_defaults(void **state)
{
        struct pinlet_config cfg;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_string_equal(cfg.listen, "/run/pinlet/pinlet.sock");
        assert_string_equal(cfg.runtime_endpoint, "unix:///run/containerd/containerd.sock");
        assert_null(cfg.image_endpoint);
        assert_int_equal(cfg.socket_mode, 0660);
        assert_int_equal(cfg.max_message_size, 16 * 1024 * 1024);
        assert_int_equal(cfg.mode, PINLET_MODE_ENFORCE);
        assert_int_equal(cfg.on_failure, PINLET_FAIL_CLOSED);
        assert_int_equal(cfg.cache_ttl_ms, 30000);
        assert_int_equal(cfg.cache_error_ttl_ms, 5000);
        assert_int_equal(cfg.resolver_per_registry, 4);
        assert_null(cfg.lock_paths);
        assert_int_equal(cfg.lock_require, PINLET_LOCK_REQUIRE_OFF);
        assert_string_equal(cfg.state_dir, "/var/lib/pinlet");
        assert_string_equal(cfg.audit_file, "/var/log/pinlet/audit.jsonl");
        assert_string_equal(cfg.docker_config_paths[0], "/var/lib/kubelet/config.json");
        assert_int_equal(pinlet_config_validate(&cfg, NULL), 0);
        pinlet_config_free(&cfg);
}

static void test_full_file(void **state)
{
        static const char yaml[] =
                "# every key pinlet knows\n"
                "listen: /tmp/p.sock\n"
                "socket:\n"
                "  mode: \"0600\"\n"
                "  owner: 0\n"
                "  group: root\n"
                "runtime_endpoint: unix:///tmp/c.sock\n"
                "image_endpoint: unix:///tmp/i.sock\n"
                "max_message_size: 32MiB\n"
                "shutdown_grace: 1m30s\n"
                "log: {level: debug, format: json}\n"
                "mode: audit\n"
                "on_failure: open\n"
                "scope:\n"
                "  include:\n"
                "    registries: ['*.corp.example', 'ghcr.io']\n"
                "    repositories: [docker.io/library/*]\n"
                "  exclude:\n"
                "    namespaces: [kube-system]\n"
                "state_dir: /tmp/state\n"
                "audit: {file: '-', stderr: true}\n"
                "cache: {ttl: 10s, stale_if_error: 5m, negative_ttl: 500ms, error_ttl: 2s,\n"
                "        max_entries: 7}\n"
                "pins: {max_entries: 9}\n"
                "resolver: {connect_timeout: 2s, timeout: 4s, workers: 3, per_registry: 1024}\n"
                "credentials:\n"
                "  docker_config: [/a.json, /b.json]\n"
                "registries:\n"
                "  registry.corp.example:5000:\n"
                "    ca_file: /ca.pem\n"
                "    cert_file: /c.pem\n"
                "    key_file: /k.pem\n"
                "    on_failure: closed\n"
                "  127.0.0.1:5001:\n"
                "    insecure: true\n"
                "  plain.example:\n"
                "lock:\n"
                "  paths: [/etc/pinlet/locks, /srv/app/images.lock]\n"
                "  require: enforce\n";
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_registry_config *r;
        struct pinlet_config cfg;

        assert_int_equal(load(&cfg, yaml, &err), 0);
        assert_null(err);
        assert_string_equal(cfg.listen, "/tmp/p.sock");
        assert_int_equal(cfg.socket_mode, 0600);
        assert_int_equal(cfg.socket_uid, 0);
        assert_int_equal(cfg.socket_gid, 0);
        assert_string_equal(cfg.image_endpoint, "unix:///tmp/i.sock");
        assert_int_equal(cfg.max_message_size, 32 * 1024 * 1024);
        assert_int_equal(cfg.shutdown_grace_ms, 90000);
        assert_int_equal(cfg.log_level, PINLET_LOG_DEBUG);
        assert_int_equal(cfg.log_format, PINLET_LOG_JSON);
        assert_int_equal(cfg.mode, PINLET_MODE_AUDIT);
        assert_int_equal(cfg.on_failure, PINLET_FAIL_OPEN);
        assert_int_equal(pinlet_strv_length(cfg.include.registries), 2);
        assert_string_equal(cfg.include.registries[0], "*.corp.example");
        assert_string_equal(cfg.include.repositories[0], "docker.io/library/*");
        assert_null(cfg.include.namespaces);
        assert_string_equal(cfg.exclude.namespaces[0], "kube-system");
        assert_string_equal(cfg.audit_file, "-");
        assert_true(cfg.audit_stderr);
        assert_int_equal(cfg.cache_ttl_ms, 10000);
        assert_int_equal(cfg.cache_stale_if_error_ms, 300000);
        assert_int_equal(cfg.cache_negative_ttl_ms, 500);
        assert_int_equal(cfg.cache_max_entries, 7);
        assert_int_equal(cfg.pins_max_entries, 9);
        assert_int_equal(cfg.workers, 3);
        assert_int_equal(cfg.resolver_per_registry, 1024);
        assert_int_equal(cfg.cache_error_ttl_ms, 2000);
        assert_int_equal(pinlet_strv_length(cfg.lock_paths), 2);
        assert_string_equal(cfg.lock_paths[0], "/etc/pinlet/locks");
        assert_string_equal(cfg.lock_paths[1], "/srv/app/images.lock");
        assert_int_equal(cfg.lock_require, PINLET_LOCK_REQUIRE_ENFORCE);
        assert_int_equal(pinlet_strv_length(cfg.docker_config_paths), 2);
        assert_int_equal(cfg.n_registries, 3);
        r = pinlet_config_registry(&cfg, "registry.corp.example:5000");
        assert_non_null(r);
        assert_string_equal(r->ca_file, "/ca.pem");
        assert_int_equal(r->on_failure, PINLET_FAIL_CLOSED);
        r = pinlet_config_registry(&cfg, "127.0.0.1:5001");
        assert_non_null(r);
        assert_true(r->insecure);
        assert_int_equal(r->on_failure, PINLET_FAIL_UNSET);
        assert_non_null(pinlet_config_registry(&cfg, "plain.example"));
        assert_null(pinlet_config_registry(&cfg, "other.example"));
        assert_int_equal(pinlet_config_validate(&cfg, &err), 0);
        pinlet_config_free(&cfg);
}

/* Every malformed file names the file, the line and the key. */
static const struct {
        const char *yaml;
        const char *message;
} bad_files[] = {
        { "listen: /x\nlisten_socket: /y\n", "test.yaml:2: unknown key 'listen_socket'" },
        { "cache:\n  ttl: 30s\n  tll: 5s\n", "test.yaml:3: unknown key 'cache.tll'" },
        { "cache:\n  ttl: 3 parsecs\n",
          "test.yaml:2: key 'cache.ttl': invalid duration '3 parsecs'" },
        { "mode: strict\n", "test.yaml:1: key 'mode': invalid mode 'strict'" },
        { "on_failure: maybe\n", "test.yaml:1: key 'on_failure': invalid on_failure 'maybe'" },
        { "log:\n  level: loud\n", "test.yaml:2: key 'log.level': invalid log level 'loud'" },
        { "log:\n  format: xml\n", "test.yaml:2: key 'log.format': invalid log format 'xml'" },
        { "socket:\n  mode: 0999\n", "test.yaml:2: key 'socket.mode': invalid file mode '0999'" },
        { "socket:\n  owner: no-such-user-pinlet\n",
          "test.yaml:2: key 'socket.owner': unknown user 'no-such-user-pinlet'" },
        { "max_message_size: lots\n", "test.yaml:1: key 'max_message_size': invalid size" },
        { "resolver:\n  workers: 0\n",
          "test.yaml:2: key 'resolver.workers': invalid number '0' (expected 1 to 256)" },
        { "resolver:\n  workers: 1000\n", "test.yaml:2: key 'resolver.workers': invalid number" },
        { "resolver:\n  per_registry: 0\n",
          "test.yaml:2: key 'resolver.per_registry': invalid number '0' (expected 1 to 1024)" },
        { "resolver:\n  per_registry: 1025\n",
          "test.yaml:2: key 'resolver.per_registry': invalid number '1025'" },
        { "resolver: {per_registry: four}\n",
          "test.yaml:1: key 'resolver.per_registry': invalid number 'four'" },
        { "resolver: {per_registry: -1}\n", "key 'resolver.per_registry': invalid number '-1'" },
        { "cache:\n  error_ttl: soon\n", "test.yaml:2: key 'cache.error_ttl': invalid duration" },
        { "lock:\n  require: strict\n",
          "test.yaml:2: key 'lock.require': invalid lock requirement 'strict' (expected off, "
          "audit or enforce)" },
        { "lock:\n  paths: {a: b}\n", "test.yaml:2: key 'lock.paths': expected a list" },
        { "lock:\n  path: /x\n", "test.yaml:2: unknown key 'lock.path'" },
        { "verifiers:\n  max: 0\n",
          "test.yaml:2: key 'verifiers.max': invalid number '0' (expected 1 to 1000)" },
        { "verifiers:\n  bin_dir: /v\n  timeout: soon\n",
          "test.yaml:3: key 'verifiers.timeout': invalid duration 'soon'" },
        { "verifiers:\n  on_failure: maybe\n",
          "test.yaml:2: key 'verifiers.on_failure': invalid on_failure 'maybe' (expected "
          "closed or open)" },
        { "verifiers:\n  bin_dirs: /v\n", "test.yaml:2: unknown key 'verifiers.bin_dirs'" },
        { "verifiers: [a]\n", "test.yaml:1: key 'verifiers'" },
        { "cache: {max_entries: -1}\n", "test.yaml:1: key 'cache.max_entries': invalid count" },
        { "audit:\n  stderr: perhaps\n",
          "test.yaml:2: key 'audit.stderr': invalid boolean 'perhaps'" },
        { "listen: [a, b]\n", "test.yaml:1: key 'listen': expected a single value" },
        { "cache: 5\n", "test.yaml:1: key 'cache': expected a mapping" },
        { "scope:\n  exclude:\n    namespaces: {a: b}\n",
          "test.yaml:3: key 'scope.exclude.namespaces': expected a list of strings" },
        { "registries:\n  https://r.example:\n    insecure: true\n",
          "test.yaml:2: key 'registries': invalid registry host 'https://r.example'" },
        { "registries:\n  r.example:\n    insecure: true\n    verify: false\n",
          "test.yaml:4: unknown key 'registries.r.example.verify'" },
        { "registries:\n  r.example: {on_failure: later}\n",
          "test.yaml:2: key 'registries.r.example.on_failure': invalid on_failure 'later'" },
        { "mode: audit\nmode: enforce\n", "test.yaml:2: key 'mode': duplicate key" },
        { "- a\n- b\n", "test.yaml:1: expected a mapping at the top level" },
        { "listen: /x\n  bad: indent\n", "test.yaml:2: invalid YAML" },
        { "key: \"unterminated\n", "test.yaml:" },
};

static void test_bad_files(void **state)
{
        for (size_t i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_config cfg;
                int r;

                r = load(&cfg, bad_files[i].yaml, &err);
                if (r >= 0 || !err || !strstr(err->message, bad_files[i].message))
                        fail_msg("case %zu: expected error containing \"%s\", got r=%d \"%s\"", i,
                                 bad_files[i].message, r, err ? err->message : "(none)");
                pinlet_config_free(&cfg);
        }
}

/* The hardening cases: each is refused with the file and the line where it happens. */
static const struct {
        const char *yaml;
        size_t len; /* 0: strlen(yaml); else the input holds NUL bytes */
        const char *message;
} hostile_files[] = {
        /* NUL bytes decoded from escapes would cut the C string short */
        { "mode: audit\nlisten: \"/tmp/a\\0b\"\n", 0, "test.yaml:2: NUL byte" },
        { "listen: \"/tmp/a\\x00b\"\n", 0, "test.yaml:1: NUL byte" },
        { "listen: \"/tmp/a\\u0000b\"\n", 0, "test.yaml:1: NUL byte" },
        { "mode: audit\n\"mode\\0x\": off\n", 0, "test.yaml:2: NUL byte" },
        { "registries:\n  \"r.example\\0evil\": {insecure: true}\n", 0, "test.yaml:2: NUL byte" },
        { "scope:\n  exclude:\n    namespaces: [a, \"b\\0\"]\n", 0, "test.yaml:3: NUL byte" },
        /* a raw NUL byte is not YAML at all; the line is still the right one */
        { "mode: audit\nlisten: /tmp/a\0b\n", 27, "test.yaml:2: invalid YAML" },
        /* a second document would otherwise be ignored without a word */
        { "mode: audit\n---\nmode: off\n", 0, "test.yaml:2: a second YAML document" },
        { "---\nmode: audit\n...\n---\nmode: off\n", 0, "test.yaml:4: a second YAML document" },
        { "mode: audit\n---\n", 0, "test.yaml:2: a second YAML document" },
        { "mode: audit\n...\nmode: off\n", 0, "test.yaml:3: invalid YAML" },
        /* case-insensitive registry hosts: two spellings of one host */
        { "registries:\n  Reg.Example:\n    ca_file: /a.pem\n  reg.example:\n    ca_file: /b.pem\n",
          0,
          "test.yaml:4: key 'registries': duplicate keys after normalization: 'reg.example' "
          "(line 4) and 'Reg.Example' (line 2) are both registry 'reg.example'" },
        { "registries:\n  r.example:5000: {}\n  R.EXAMPLE:5000: {}\n", 0,
          "test.yaml:3: key 'registries': duplicate keys after normalization" },
        { "registries:\n  r.example: {}\n  r.example: {}\n", 0,
          "test.yaml:3: key 'registries': duplicate key 'r.example' (line 3 and line 2)" },
};

static void test_hostile_files(void **state)
{
        for (size_t i = 0; i < sizeof(hostile_files) / sizeof(hostile_files[0]); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                const char *yaml = hostile_files[i].yaml;
                size_t len = hostile_files[i].len ? hostile_files[i].len : strlen(yaml);
                struct pinlet_config cfg;
                int r;

                assert_int_equal(pinlet_config_init(&cfg), 0);
                r = pinlet_config_load_buffer(&cfg, "test.yaml", yaml, len, &err);
                if (r >= 0 || !err || !strstr(err->message, hostile_files[i].message))
                        fail_msg("case %zu: expected error containing \"%s\", got r=%d \"%s\"", i,
                                 hostile_files[i].message, r, err ? err->message : "(none)");
                pinlet_config_free(&cfg);
        }
}

static char *repeat(const char *head, const char *tail, const char *middle, size_t n)
{
        size_t hl = strlen(head), tl = strlen(tail), ml = strlen(middle);
        char *s = malloc(n * (hl + tl) + ml + 1), *p = s;

        assert_non_null(s);
        for (size_t i = 0; i < n; i++, p += hl)
                memcpy(p, head, hl);
        memcpy(p, middle, ml);
        p += ml;
        for (size_t i = 0; i < n; i++, p += tl)
                memcpy(p, tail, tl);
        *p = '\0';
        return s;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deep nesting is refused where it crosses 64 levels, before any tree is built: 100000
 * levels cost what 65 do. */
static void test_deep_nesting(void **state)
{
        static const struct {
                const char *head, *tail, *middle;
                size_t levels;
                const char *message;
        } cases[] = {
                { "[", "]", "", 100000, "test.yaml:1: nesting deeper than 64 levels" },
                { "[", "", "", 100000, "test.yaml:1: nesting deeper than 64 levels" },
                { "{a: ", "}", "b", 100000, "test.yaml:1: nesting deeper than 64 levels" },
                /* the k-th '[' is on line k, at depth k + 1 under the root mapping */
                { "[\n", "]\n", "", 100000, "test.yaml:64: nesting deeper than 64 levels" },
                { "{a: ", "", "", 100000, "test.yaml:1: nesting deeper than 64 levels" },
                /* 65 levels: the root mapping and 64 sequences */
                { "[", "]", "", 64, "test.yaml:1: nesting deeper than 64 levels" },
                /* 64 levels are not refused for depth: the schema refuses them */
                { "[", "]", "", 63, "test.yaml:1: key 'listen': expected a single value" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                _cleanup_free_ char *nested = NULL, *yaml = NULL;
                struct pinlet_config cfg;
                double t0;
                int r;

                nested = repeat(cases[i].head, cases[i].tail, cases[i].middle, cases[i].levels);
                assert_true(asprintf(&yaml, "listen: %s\n", nested) > 0);
                assert_int_equal(pinlet_config_init(&cfg), 0);
                t0 = now_s();
                r = pinlet_config_load_buffer(&cfg, "test.yaml", yaml, strlen(yaml), &err);
                /* generous for sanitizer builds on a busy machine; the unbounded loader
                 * takes seconds and gigabytes, or the stack */
                if (now_s() - t0 > 2.0)
                        fail_msg("case %zu: took %.1f s", i, now_s() - t0);
                if (r >= 0 || !err || !strstr(err->message, cases[i].message))
                        fail_msg("case %zu: expected error containing \"%s\", got r=%d \"%s\"", i,
                                 cases[i].message, r, err ? err->message : "(none)");
                pinlet_config_free(&cfg);
        }
}

/* Block mappings nest by indentation: "a:" under "a:" 70 times. */
static void test_deep_block_mapping(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        char yaml[16384] = "listen:\n";
        struct pinlet_config cfg;
        size_t n = strlen(yaml);

        for (int level = 1; level <= 70; level++)
                n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "%*sa:\n", 2 * level, "");
        assert_true(n < sizeof(yaml));
        assert_true(load(&cfg, yaml, &err) < 0);
        /* the root mapping is level 1; the mapping starting on line k is level k */
        assert_non_null(strstr(err->message, "test.yaml:65: nesting deeper than 64 levels"));
        pinlet_config_free(&cfg);
}

/* Registry hosts are case-insensitive: stored lower-case, found in any case. */
static void test_registry_host_case(void **state)
{
        static const char yaml[] = "registries:\n"
                                   "  Reg.Example:\n"
                                   "    ca_file: /ca.pem\n"
                                   "  LOCALHOST:5000: {insecure: true}\n";
        static const char second[] = "registries: {REG.example: {}}\n";
        _cleanup_error_ struct pinlet_error *err = NULL;
        const struct pinlet_registry_config *r;
        struct pinlet_config cfg;

        assert_int_equal(load(&cfg, yaml, &err), 0);
        assert_int_equal(cfg.n_registries, 2);
        assert_string_equal(cfg.registries[0].host, "reg.example");
        assert_string_equal(cfg.registries[1].host, "localhost:5000");
        for (size_t i = 0; i < 3; i++) {
                static const char *const spellings[] = { "Reg.Example", "reg.example",
                                                         "REG.EXAMPLE" };

                r = pinlet_config_registry(&cfg, spellings[i]);
                assert_non_null(r);
                assert_string_equal(r->ca_file, "/ca.pem");
        }
        r = pinlet_config_registry(&cfg, "Localhost:5000");
        assert_non_null(r);
        assert_true(r->insecure);
        assert_null(pinlet_config_registry(&cfg, "reg.example:443"));
        assert_null(pinlet_config_registry(&cfg, "localhost"));

        /* a second file naming the same host in another case is refused as well */
        assert_true(pinlet_config_load_buffer(&cfg, "second.yaml", second, strlen(second), &err) <
                    0);
        assert_non_null(strstr(err->message, "second.yaml:1:"));
        assert_non_null(strstr(err->message, "listed twice"));
        pinlet_config_free(&cfg);
}

/* The boundaries and the values that switch something off. */
static void test_new_keys(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;

        assert_int_equal(load(&cfg,
                              "resolver: {per_registry: 1}\ncache: {error_ttl: 0}\n"
                              "lock: {paths: /one.lock, require: audit}\n",
                              &err),
                         0);
        assert_int_equal(cfg.resolver_per_registry, 1);
        assert_int_equal(cfg.cache_error_ttl_ms, 0); /* 0 disables */
        assert_int_equal(pinlet_strv_length(cfg.lock_paths), 1);
        assert_string_equal(cfg.lock_paths[0], "/one.lock");
        assert_int_equal(cfg.lock_require, PINLET_LOCK_REQUIRE_AUDIT);
        assert_int_equal(pinlet_config_validate(&cfg, &err), 0);
        /* set after loading, as a command-line flag would */
        cfg.resolver_per_registry = 0;
        assert_int_equal(pinlet_config_validate(&cfg, &err), -EINVAL);
        assert_non_null(strstr(err->message, "key 'resolver.per_registry': must be between 1"));
        pinlet_config_free(&cfg);

        /* "lock:" with nothing under it, and an explicit off */
        assert_int_equal(load(&cfg, "lock:\n", &err), 0);
        assert_int_equal(cfg.lock_require, PINLET_LOCK_REQUIRE_OFF);
        pinlet_config_free(&cfg);
        assert_int_equal(load(&cfg, "lock: {require: off, paths: ~}\n", &err), 0);
        assert_null(cfg.lock_paths);
        assert_int_equal(pinlet_config_validate(&cfg, &err), 0);
        pinlet_config_free(&cfg);
}

static void test_verifiers(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;

        /* defaults: containerd's bindir verifier defaults, verification off */
        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_null(cfg.verifiers_bin_dir);
        assert_int_equal(cfg.verifiers_max, 10);
        assert_int_equal(cfg.verifiers_timeout_ms, 10000);
        assert_int_equal(cfg.verifiers_on_failure, PINLET_FAIL_CLOSED);
        assert_int_equal(cfg.verifiers_cache_ttl_ms, 600000);
        pinlet_config_free(&cfg);

        assert_int_equal(load(&cfg,
                              "verifiers:\n"
                              "  bin_dir: /opt/pinlet/verifiers\n"
                              "  max: 3\n"
                              "  timeout: 2s\n"
                              "  on_failure: open\n"
                              "  cache_ttl: 1m\n",
                              &err),
                         0);
        assert_string_equal(cfg.verifiers_bin_dir, "/opt/pinlet/verifiers");
        assert_int_equal(cfg.verifiers_max, 3);
        assert_int_equal(cfg.verifiers_timeout_ms, 2000);
        assert_int_equal(cfg.verifiers_on_failure, PINLET_FAIL_OPEN);
        assert_int_equal(cfg.verifiers_cache_ttl_ms, 60000);
        assert_int_equal(pinlet_config_validate(&cfg, &err), 0);
        pinlet_config_free(&cfg);

        /* an empty section and cache_ttl 0 (no allow verdict kept) are fine */
        assert_int_equal(load(&cfg, "verifiers:\n", &err), 0);
        assert_null(cfg.verifiers_bin_dir);
        pinlet_config_free(&cfg);
        assert_int_equal(load(&cfg, "verifiers: {cache_ttl: 0}\n", &err), 0);
        assert_int_equal(cfg.verifiers_cache_ttl_ms, 0);
        pinlet_config_free(&cfg);
}

static void test_lock_require_names(void **state)
{
        static const struct {
                const char *name;
                enum pinlet_lock_require value;
        } names[] = {
                { "off", PINLET_LOCK_REQUIRE_OFF },
                { "audit", PINLET_LOCK_REQUIRE_AUDIT },
                { "enforce", PINLET_LOCK_REQUIRE_ENFORCE },
        };
        enum pinlet_lock_require r;

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                assert_string_equal(pinlet_lock_require_to_string(names[i].value), names[i].name);
                assert_int_equal(pinlet_lock_require_from_string(names[i].name, &r), 0);
                assert_int_equal(r, names[i].value);
        }
        r = PINLET_LOCK_REQUIRE_AUDIT;
        assert_int_equal(pinlet_lock_require_from_string("Enforce", &r), -EINVAL);
        assert_int_equal(pinlet_lock_require_from_string("", &r), -EINVAL);
        assert_int_equal(r, PINLET_LOCK_REQUIRE_AUDIT); /* untouched on failure */
        assert_string_equal(pinlet_lock_require_to_string((enum pinlet_lock_require)42), "unknown");
}

static void test_validate(void **state)
{
        static const struct {
                const char *yaml;
                const char *message;
        } cases[] = {
                { "listen: relative.sock\n", "key 'listen': must be an absolute socket path" },
                { "registries:\n  r.example: {cert_file: /c}\n",
                  "cert_file and key_file must be given together" },
                { "registries:\n  r.example: {insecure: true, skip_verify: true}\n",
                  "exclude each other" },
                { "max_message_size: 1KiB\n", "must be between 4MiB and 1GiB" },
                { "state_dir: var/lib\n", "key 'state_dir': must be an absolute path" },
                { "resolver: {timeout: 0s}\n", "timeouts must be greater than 0" },
                { "lock: {require: enforce}\n",
                  "key 'lock.require': 'enforce' needs lock files in lock.paths" },
                { "lock: {require: audit, paths: []}\n",
                  "key 'lock.require': 'audit' needs lock files in lock.paths" },
                { "lock: {paths: [locks/app.lock]}\n",
                  "key 'lock.paths': 'locks/app.lock' is not an absolute path" },
                { "lock: {paths: [/a.lock, '']}\n",
                  "key 'lock.paths': '' is not an absolute path" },
                { "verifiers: {bin_dir: verifiers.d}\n",
                  "key 'verifiers.bin_dir': must be an absolute path" },
                { "verifiers: {bin_dir: /v, timeout: 0}\n",
                  "key 'verifiers.timeout': must be greater than 0" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_config cfg;

                assert_int_equal(load(&cfg, cases[i].yaml, &err), 0);
                assert_true(pinlet_config_validate(&cfg, &err) < 0);
                if (!strstr(err->message, cases[i].message))
                        fail_msg("case %zu: got \"%s\"", i, err->message);
                assert_non_null(strstr(err->message, "test.yaml"));
                pinlet_config_free(&cfg);
        }
}

static void test_empty_and_null(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;

        assert_int_equal(load(&cfg, "", &err), 0);
        assert_string_equal(cfg.listen, "/run/pinlet/pinlet.sock");
        pinlet_config_free(&cfg);
        assert_int_equal(load(&cfg, "# only a comment\ncache:\nimage_endpoint:\n", &err), 0);
        assert_null(cfg.image_endpoint);
        pinlet_config_free(&cfg);
}

static void test_missing_file(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_int_equal(pinlet_config_load(&cfg, "/nonexistent/pinlet.yaml", true, &err), 0);
        assert_true(pinlet_config_load(&cfg, "/nonexistent/pinlet.yaml", false, &err) < 0);
        assert_non_null(strstr(err->message, "/nonexistent/pinlet.yaml"));
        pinlet_config_free(&cfg);
}

static void test_credential_providers(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_config cfg;

        assert_int_equal(pinlet_config_init(&cfg), 0);
        assert_null(cfg.provider_config);
        assert_null(cfg.provider_bin_dir);
        pinlet_config_free(&cfg);
        assert_int_equal(load(&cfg,
                              "credentials:\n"
                              "  provider_config: /etc/kubernetes/credential-providers.yaml\n"
                              "  provider_bin_dir: /usr/libexec/kubernetes/credential-providers\n",
                              &err),
                         0);
        assert_string_equal(cfg.provider_config, "/etc/kubernetes/credential-providers.yaml");
        assert_string_equal(cfg.provider_bin_dir, "/usr/libexec/kubernetes/credential-providers");
        assert_int_equal(pinlet_config_validate(&cfg, &err), 0);
        pinlet_config_free(&cfg);

        /* one without the other, and relative paths, are refused naming both keys */
        static const char *const bad[] = {
                "credentials: {provider_config: /etc/cp.yaml}\n",
                "credentials: {provider_bin_dir: /usr/libexec/cp}\n",
                "credentials: {provider_config: cp.yaml, provider_bin_dir: /usr/libexec/cp}\n",
                "credentials: {provider_config: /etc/cp.yaml, provider_bin_dir: bin}\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                pinlet_error_free(err);
                err = NULL;
                assert_int_equal(load(&cfg, bad[i], &err), 0);
                assert_true(pinlet_config_validate(&cfg, &err) < 0);
                assert_non_null(strstr(err->message, "credentials.provider_config"));
                assert_non_null(strstr(err->message, "credentials.provider_bin_dir"));
                pinlet_config_free(&cfg);
        }
}

static void test_durations(void **state)
{
        static const struct {
                const char *in;
                int ok;
                uint64_t ms;
        } cases[] = {
                { "30", 1, 30000 },      { "30s", 1, 30000 },
                { "500ms", 1, 500 },     { "2m", 1, 120000 },
                { "1h30m", 1, 5400000 }, { "1m1s1ms", 1, 61001 },
                { "0s", 1, 0 },          { "", 0, 0 },
                { "s", 0, 0 },           { "5x", 0, 0 },
                { "-5s", 0, 0 },         { "5 s", 0, 0 },
                { "1.5s", 0, 0 },        { "99999999999999999999s", 0, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                uint64_t ms = 0;
                int r = pinlet_parse_duration_ms(cases[i].in, &ms);

                if ((r == 0) != cases[i].ok || (r == 0 && ms != cases[i].ms))
                        fail_msg("duration '%s': r=%d ms=%llu", cases[i].in, r,
                                 (unsigned long long)ms);
        }
}

static void test_sizes(void **state)
{
        static const struct {
                const char *in;
                int ok;
                size_t v;
        } cases[] = {
                { "16777216", 1, 16777216 },
                { "16MiB", 1, 16777216 },
                { "64KiB", 1, 65536 },
                { "1GiB", 1, 1073741824 },
                { "10M", 1, 10000000 },
                { "7B", 1, 7 },
                { "", 0, 0 },
                { "MiB", 0, 0 },
                { "16 MiB", 0, 0 },
                { "16mib", 0, 0 },
                { "-1", 0, 0 },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t v = 0;
                int r = pinlet_parse_size(cases[i].in, &v);

                if ((r == 0) != cases[i].ok || (r == 0 && v != cases[i].v))
                        fail_msg("size '%s': r=%d v=%zu", cases[i].in, r, v);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_full_file),
                cmocka_unit_test(test_bad_files),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_empty_and_null),
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_durations),
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_hostile_files),
                cmocka_unit_test(test_deep_nesting),
                cmocka_unit_test(test_deep_block_mapping),
                cmocka_unit_test(test_registry_host_case),
                cmocka_unit_test(test_new_keys),
                cmocka_unit_test(test_lock_require_names),
                cmocka_unit_test(test_verifiers),
                cmocka_unit_test(test_credential_providers),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
