/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd's registry host directory: hosts.toml semantics (order, server default,
 * capabilities, ca/client forms, relative paths, override_path, headers, type errors with
 * file:line), the Docker certificate layout fallback, _default, and the stat-validated
 * cache picking up edits, renames and new files without a new object.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hosts/hosts.h"

static char dir[] = "/tmp/pinlet-hosts-XXXXXX";

static void write_file(const char *rel, const char *content)
{
        char path[512], tmp[600];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        /* write a temporary file and rename it over: the way tools replace files */
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
}

static void make_dir(const char *rel)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        assert_int_equal(mkdir(path, 0755), 0);
}

static int setup(void **state)
{
        strcpy(dir, "/tmp/pinlet-hosts-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char cmd[600];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

static struct pinlet_hosts_list *parse_ok(const char *text, const char *registry)
{
        struct pinlet_hosts_list *l = NULL;
        struct pinlet_error *err = NULL;
        int r;

        r = pinlet_hosts_containerd_parse("hosts.toml", text, strlen(text), registry, "/base", &l,
                                          &err);
        if (r < 0)
                fail_msg("%s", pinlet_error_message(err, r));
        return l;
}

static void test_order_and_defaults(void **state)
{
        struct pinlet_hosts_list *l;

        l = parse_ok("[host.\"https://m2.example:5000\"]\n"
                     "  capabilities = [\"pull\", \"resolve\"]\n"
                     "[host.\"http://m1.example\"]\n"
                     "  capabilities = [\"pull\"]\n"
                     "[host.\"m3.example/sub/\"]\n",
                     "docker.io");
        assert_int_equal(l->n, 4);
        assert_string_equal(l->source, "hosts.toml");
        /* file order, not sorted */
        assert_string_equal(l->v[0].url, "https://m2.example:5000");
        assert_string_equal(l->v[0].host, "m2.example:5000");
        assert_string_equal(l->v[0].path, "/v2");
        assert_int_equal(l->v[0].caps, PINLET_HOSTS_CAP_PULL | PINLET_HOSTS_CAP_RESOLVE);
        assert_string_equal(l->v[1].url, "http://m1.example");
        assert_int_equal(l->v[1].caps, PINLET_HOSTS_CAP_PULL);
        /* no scheme: https; a path gets /v2 appended */
        assert_string_equal(l->v[2].url, "https://m3.example");
        assert_string_equal(l->v[2].path, "/sub/v2");
        assert_int_equal(l->v[2].caps, PINLET_HOSTS_CAP_ALL);
        /* the server last; docker.io's default server is registry-1.docker.io */
        assert_string_equal(l->v[3].url, "https://registry-1.docker.io");
        assert_string_equal(l->v[3].host, "registry-1.docker.io");
        pinlet_hosts_list_unref(l);

        l = parse_ok("server = \"https://Reg.Example:443/\"\n", "reg.example");
        assert_int_equal(l->n, 1);
        assert_string_equal(l->v[0].url, "https://reg.example:443");
        assert_string_equal(l->v[0].host, "reg.example");
        assert_string_equal(l->v[0].path, "/v2");
        pinlet_hosts_list_unref(l);
}

static void test_tls_and_headers(void **state)
{
        struct pinlet_hosts_list *l;

        l = parse_ok("server = \"https://r.example\"\n"
                     "ca = \"root.pem\"\n"
                     "client = [[\"/abs/c.cert\", \"c.key\"], [\"both.pem\", \"\"], \"one.pem\"]\n"
                     "skip_verify = true\n"
                     "unknown_key = \"ignored, as containerd does\"\n"
                     "[header]\n  x-one = \"1\"\n  x-two = [\"a\", \"b\"]\n"
                     "[host.\"https://m.example\"]\n  ca = [\"a.pem\", \"/b.pem\"]\n"
                     "  override_path = true\n"
                     "[host.\"https://p.example/custom/api\"]\n  override_path = true\n",
                     "r.example");
        assert_int_equal(l->n, 3);
        assert_string_equal(l->v[0].ca_files[0], "/base/a.pem");
        assert_string_equal(l->v[0].ca_files[1], "/b.pem");
        assert_null(l->v[0].ca_files[2]);
        assert_string_equal(l->v[0].path, ""); /* override_path, no path: the root */
        assert_string_equal(l->v[1].path, "/custom/api");
        assert_string_equal(l->v[2].ca_files[0], "/base/root.pem");
        assert_string_equal(l->v[2].cert_files[0], "/abs/c.cert");
        assert_string_equal(l->v[2].key_files[0], "/base/c.key");
        assert_string_equal(l->v[2].cert_files[1], "/base/both.pem");
        assert_string_equal(l->v[2].key_files[1], "/base/both.pem");
        assert_string_equal(l->v[2].cert_files[2], "/base/one.pem");
        assert_string_equal(l->v[2].key_files[2], "/base/one.pem");
        assert_true(l->v[2].skip_verify);
        assert_false(l->v[0].skip_verify);
        assert_string_equal(l->v[2].headers[0], "x-one: 1");
        assert_string_equal(l->v[2].headers[1], "x-two: a");
        assert_string_equal(l->v[2].headers[2], "x-two: b");
        assert_null(l->v[2].headers[3]);
        pinlet_hosts_list_unref(l);
}

static void test_errors(void **state)
{
        static const struct {
                const char *text, *msg;
        } cases[] = {
                { "server = 5\n", "hosts.toml:1: 'server' must be a string, not a integer" },
                { "\nskip_verify = \"yes\"\n",
                  "hosts.toml:2: 'skip_verify' must be a boolean, not a string" },
                { "[host.\"https://m\"]\nca = 1\n",
                  "hosts.toml:2: 'ca' must be a string or an array of strings, not a integer" },
                { "[host.\"https://m\"]\nclient = [[1]]\n",
                  "hosts.toml:2: 'client' must be a string or a [cert, key] pair, not a array" },
                { "[host.\"ftp://m\"]\n", "hosts.toml:1: 'ftp://m' is not a registry URL" },
                { "server = \"https://user@m\"\n",
                  "hosts.toml:1: 'https://user@m' is not a registry URL" },
                { "[header]\n\"bad name\" = \"v\"\n",
                  "hosts.toml:2: 'bad name' is not a header name" },
                { "[header]\nx = \"a\\r\\nInjected: 1\"\n",
                  "hosts.toml:2: header 'x' holds a line break" },
                { "host = 1\n", "hosts.toml:1: 'host' must be a table of [host.\"URL\"] tables, "
                                "not a integer" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct pinlet_hosts_list *l = NULL;
                struct pinlet_error *err = NULL;
                int r = pinlet_hosts_containerd_parse("hosts.toml", cases[i].text,
                                                      strlen(cases[i].text), "r", "/b", &l, &err);

                if (r >= 0)
                        fail_msg("case %zu accepted", i);
                assert_null(l);
                if (strcmp(pinlet_error_message(err, r), cases[i].msg) != 0)
                        fail_msg("case %zu:\n got  %s\n want %s", i, pinlet_error_message(err, r),
                                 cases[i].msg);
                pinlet_error_free(err);
        }
}

static struct pinlet_hosts_list *read_ok(const char *registry)
{
        struct pinlet_hosts_list *l = NULL;
        struct pinlet_error *err = NULL;
        int r = pinlet_hosts_containerd_read(dir, registry, &l, &err);

        if (r < 0)
                fail_msg("%s", pinlet_error_message(err, r));
        return l;
}

static void test_directory(void **state)
{
        struct pinlet_hosts_list *l;
        struct pinlet_error *err = NULL;
        char expect[600];
        int r;

        /* nothing: the default server */
        l = read_ok("reg.example:5000");
        assert_int_equal(l->n, 1);
        assert_null(l->source);
        assert_string_equal(l->v[0].url, "https://reg.example:5000");
        pinlet_hosts_list_unref(l);

        /* Docker's certificate layout, no hosts.toml */
        make_dir("reg.example:5000");
        write_file("reg.example:5000/b-ca.crt", "x");
        write_file("reg.example:5000/a-ca.crt", "x");
        write_file("reg.example:5000/client.cert", "x");
        write_file("reg.example:5000/client.key", "x");
        write_file("reg.example:5000/README", "ignored");
        l = read_ok("reg.example:5000");
        assert_int_equal(l->n, 1);
        snprintf(expect, sizeof(expect), "%s/reg.example:5000/a-ca.crt", dir);
        assert_string_equal(l->v[0].ca_files[0], expect);
        snprintf(expect, sizeof(expect), "%s/reg.example:5000/b-ca.crt", dir);
        assert_string_equal(l->v[0].ca_files[1], expect);
        snprintf(expect, sizeof(expect), "%s/reg.example:5000/client.key", dir);
        assert_string_equal(l->v[0].key_files[0], expect);
        pinlet_hosts_list_unref(l);

        /* a .cert without its .key is an error, as in containerd */
        write_file("reg.example:5000/lonely.cert", "x");
        r = pinlet_hosts_containerd_read(dir, "reg.example:5000", &l, &err);
        assert_int_equal(r, PINLET_EINVAL);
        assert_non_null(strstr(pinlet_error_message(err, r), "lonely.cert has no matching "
                                                             "lonely.key"));
        pinlet_error_free(TAKE_PTR(err));

        /* an empty hosts.toml is the certificate layout too; a real one wins */
        write_file("reg.example:5000/lonely.key", "x");
        write_file("reg.example:5000/hosts.toml", "");
        l = read_ok("reg.example:5000");
        assert_non_null(l->v[0].ca_files);
        pinlet_hosts_list_unref(l);
        write_file("reg.example:5000/hosts.toml", "server = \"http://127.0.0.1:1\"\n");
        l = read_ok("reg.example:5000");
        assert_int_equal(l->n, 1);
        assert_string_equal(l->v[0].url, "http://127.0.0.1:1");
        assert_null(l->v[0].ca_files); /* hosts.toml: the .crt files are not read */
        pinlet_hosts_list_unref(l);

        /* _default for a registry without a directory; not for one with a directory */
        make_dir("_default");
        write_file("_default/hosts.toml", "[host.\"http://127.0.0.1:2\"]\n");
        l = read_ok("other.example");
        assert_int_equal(l->n, 2);
        assert_string_equal(l->v[0].url, "http://127.0.0.1:2");
        assert_string_equal(l->v[1].url, "https://other.example");
        pinlet_hosts_list_unref(l);
        l = read_ok("reg.example:5000");
        assert_string_equal(l->v[0].url, "http://127.0.0.1:1");
        pinlet_hosts_list_unref(l);

        /* a registry name is never a path */
        r = pinlet_hosts_containerd_read(dir, "../etc", &l, &err);
        assert_int_equal(r, PINLET_EINVAL);
        pinlet_error_free(TAKE_PTR(err));
}

static void test_cache_sees_changes(void **state)
{
        _cleanup_(pinlet_hosts_freep) struct pinlet_hosts *h = NULL;
        struct pinlet_hosts_options o = { .hosts_dir = dir };
        struct pinlet_hosts_list *a, *b;
        struct pinlet_error *err = NULL;

        assert_int_equal(pinlet_hosts_new(&o, &h, &err), 0);
        assert_int_equal(pinlet_hosts_lookup(h, "r.example", "x", &a, &err), 0);
        assert_string_equal(a->v[0].url, "https://r.example");
        /* unchanged: the same list */
        assert_int_equal(pinlet_hosts_lookup(h, "R.Example", "x", &b, &err), 0);
        assert_ptr_equal(a, b);
        pinlet_hosts_list_unref(b);

        /* a new directory with a hosts.toml */
        make_dir("r.example");
        write_file("r.example/hosts.toml", "[host.\"http://127.0.0.1:3\"]\n");
        assert_int_equal(pinlet_hosts_lookup(h, "r.example", "x", &b, &err), 0);
        assert_int_equal(b->n, 2);
        assert_string_equal(b->v[0].url, "http://127.0.0.1:3");
        /* the caller's old list stays valid */
        assert_string_equal(a->v[0].url, "https://r.example");
        pinlet_hosts_list_unref(a);
        pinlet_hosts_list_unref(b);

        /* renamed over, same size, within the same second: the inode differs */
        write_file("r.example/hosts.toml", "[host.\"http://127.0.0.1:4\"]\n");
        assert_int_equal(pinlet_hosts_lookup(h, "r.example", "x", &b, &err), 0);
        assert_string_equal(b->v[0].url, "http://127.0.0.1:4");
        pinlet_hosts_list_unref(b);

        /* an error is reported, and fixing the file recovers */
        write_file("r.example/hosts.toml", "server = [\n");
        assert_true(pinlet_hosts_lookup(h, "r.example", "x", &b, &err) < 0);
        assert_non_null(strstr(pinlet_error_message(err, PINLET_EINVAL), "hosts.toml:2:"));
        pinlet_error_free(TAKE_PTR(err));
        write_file("r.example/hosts.toml", "server = \"http://127.0.0.1:5\"\n");
        assert_int_equal(pinlet_hosts_lookup(h, "r.example", "x", &b, &err), 0);
        assert_string_equal(b->v[0].url, "http://127.0.0.1:5");
        pinlet_hosts_list_unref(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_order_and_defaults),
                cmocka_unit_test(test_tls_and_headers),
                cmocka_unit_test(test_errors),
                cmocka_unit_test_setup_teardown(test_directory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cache_sees_changes, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
