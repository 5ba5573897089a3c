/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The verifier runner (src/verify) against real child processes: small /bin/sh verifiers
 * written into a private directory. Covers the contract byte for byte (argv, stdin,
 * environment, descriptors), AND, verifiers.max, timeouts and crashes under both
 * on_failure values, bounded output, and the verdict cache.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "pinlet/verifier.h"
#include "util/io.h"
#include "util/time.h"
#include "verify/verify.h"

#define DIGEST "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define NAME   "127.0.0.1:5000/tiny/app:v1"

static char dir[256];

static int setup(void **state)
{
        char tmpl[] = "/tmp/pinlet-test-verify-XXXXXX";

        assert_non_null(mkdtemp(tmpl));
        snprintf(dir, sizeof(dir), "%s", tmpl);
        return 0;
}

static int teardown(void **state)
{
        char cmd[512];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        return system(cmd) == 0 ? 0 : -1;
}

/* bin_dir for the case: DIR/<sub>, created empty */
static const char *bin(const char *sub)
{
        static char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, sub);
        assert_int_equal(pinlet_io_mkdir_p(path, 0755), 0);
        return path;
}

static void script(const char *bin_dir, const char *name, const char *body)
{
        char path[1024];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", bin_dir, name);
        f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "#!/bin/sh\n%s\n", body);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, 0755), 0);
}

static char *slurp(const char *path)
{
        char *data = NULL;

        assert_int_equal(pinlet_io_read_file(path, 1 << 20, 0, &data, NULL, NULL), 0);
        return data;
}

static struct pinlet_verify *runner(const char *bin_dir, unsigned max, uint64_t timeout_ms,
                                    enum pinlet_on_failure on_failure)
{
        struct pinlet_verify *v = NULL;
        struct pinlet_error *err = NULL;
        const struct pinlet_verify_options o = {
                .bin_dir = bin_dir,
                .max = max,
                .timeout_ms = timeout_ms,
                .on_failure = on_failure,
                .allow_ttl_ms = 600000,
                .config_path = "/etc/pinlet/test-config.yaml",
                .runtime_name = "containerd",
        };

        assert_int_equal(pinlet_verify_new(&o, &v, &err), 0);
        return v;
}

static const struct pinlet_verify_descriptor desc = {
        .media_type = (char *)"application/vnd.oci.image.manifest.v1+json",
        .digest = (char *)DIGEST,
        .size = 528,
};

static void run(struct pinlet_verify *v, struct pinlet_verify_verdict *ret)
{
        struct pinlet_error *err = NULL;

        *ret = (struct pinlet_verify_verdict){ 0 };
        assert_int_equal(pinlet_verify_run(v, NAME, &desc, pinlet_now_ms() + 20000, ret, &err), 0);
}

/* argv, stdin, the environment and the open descriptors, as the verifier sees them */
static void test_contract(void **state)
{
        const char *b = bin("contract");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;
        char body[2048], path[512];
        _cleanup_free_ char *argv = NULL, *in = NULL, *env = NULL, *fds = NULL;
        int leak;

        snprintf(body, sizeof(body),
                 "for a in \"$0\" \"$@\"; do printf '%%s\\n' \"$a\"; done > %s/argv\n"
                 "cat > %s/stdin\n"
                 "printf '%%s %%s' \"$PINLET_CONFIG\" \"$PINLET_RUNTIME\" > %s/env\n"
                 "exec ls /proc/self/fd > %s/fds",
                 dir, dir, dir, dir);
        script(b, "record", body);
        /* a descriptor without O_CLOEXEC, as a library might leave one: it must not
         * reach the verifier */
        leak = open("/dev/null", O_RDONLY);
        assert_true(leak >= 0);
        assert_int_equal(dup2(leak, 57), 57);
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        close(57);
        close(leak);
        assert_true(vd.allow);
        assert_int_equal(vd.n_results, 1);
        assert_string_equal(vd.results[0].name, "record");
        assert_false(vd.results[0].failed);

        snprintf(path, sizeof(path), "%s/argv", dir);
        argv = slurp(path);
        snprintf(body, sizeof(body),
                 "%s/record\n-name\n" NAME "\n-digest\n" DIGEST
                 "\n-stdin-media-type\napplication/vnd.oci.descriptor.v1+json\n",
                 b);
        assert_string_equal(argv, body);
        snprintf(path, sizeof(path), "%s/stdin", dir);
        in = slurp(path);
        assert_string_equal(in, "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                                "\"digest\":\"" DIGEST "\",\"size\":528}");
        snprintf(path, sizeof(path), "%s/env", dir);
        env = slurp(path);
        assert_string_equal(env, "/etc/pinlet/test-config.yaml containerd");
        /* ls's own directory descriptor is 3; nothing of the daemon's */
        snprintf(path, sizeof(path), "%s/fds", dir);
        fds = slurp(path);
        assert_string_equal(fds, "0\n1\n2\n3\n");
        assert_int_equal(pinlet_verify_runs(v), 1);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

/* every verifier must allow; the first deny ends the run; its stdout is the reason */
static void test_and(void **state)
{
        const char *b = bin("and");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;

        script(b, "10-allow", "echo fine; exit 0");
        script(b, "20-deny", "printf 'not signed\\nby key A\\n'; echo noise >&2; exit 1");
        script(b, "30-never", "exit 0");
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_false(vd.allow);
        assert_false(vd.cached);
        assert_int_equal(vd.n_results, 2);
        assert_true(vd.results[0].allow);
        assert_string_equal(vd.results[0].reason, "fine");
        assert_false(vd.results[1].allow);
        assert_false(vd.results[1].failed);
        assert_string_equal(vd.results[1].reason, "not signed by key A");
        assert_string_equal(vd.message, "blocked by verifier 20-deny: not signed by key A");
        assert_true(vd.results[1].ms >= 0);
        pinlet_verify_verdict_done(&vd);

        /* the deny is cached: no second run */
        run(v, &vd);
        assert_false(vd.allow);
        assert_true(vd.cached);
        assert_string_equal(vd.message, "blocked by verifier 20-deny: not signed by key A");
        assert_int_equal(pinlet_verify_runs(v), 2);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);

        /* a silent deny says its exit status */
        b = bin("and-silent");
        script(b, "a", "exit 3");
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_false(vd.allow);
        assert_string_equal(vd.message, "blocked by verifier a: exit status 3");
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

/* only the first max entries, in byte order, run */
static void test_max(void **state)
{
        const char *b = bin("max");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;

        script(b, "B", "exit 0");
        script(b, "a", "exit 1"); /* 'a' sorts after 'B' in byte order */
        script(b, "A", "exit 0");
        v = runner(b, 2, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_true(vd.allow);
        assert_int_equal(vd.n_results, 2);
        assert_string_equal(vd.results[0].name, "A");
        assert_string_equal(vd.results[1].name, "B");
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

static void test_timeout(void **state)
{
        const char *b = bin("slow");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;
        int64_t t0;

        /* exec: the sleep itself must be killed, not only a shell around it */
        script(b, "slow", "exec sleep 30");
        v = runner(b, 0, 300, PINLET_FAIL_CLOSED);
        t0 = pinlet_now_ms();
        run(v, &vd);
        assert_true(pinlet_now_ms() - t0 < 5000);
        assert_false(vd.allow);
        assert_true(vd.results[0].failed);
        assert_string_equal(vd.results[0].reason, "timed out (killed)");
        assert_string_equal(vd.message, "blocked by verifier slow: timed out (killed)");
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);

        /* open: skipped, allowed, and not cached (it runs again next time) */
        v = runner(b, 0, 300, PINLET_FAIL_OPEN);
        run(v, &vd);
        assert_true(vd.allow);
        assert_true(vd.results[0].failed);
        assert_true(vd.results[0].allow);
        pinlet_verify_verdict_done(&vd);
        vd = (struct pinlet_verify_verdict){ 0 };
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 0);
        run(v, &vd);
        assert_false(vd.cached);
        assert_int_equal(pinlet_verify_runs(v), 2);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);

        /* the caller's deadline bounds a verifier too */
        v = runner(b, 0, 60000, PINLET_FAIL_CLOSED);
        vd = (struct pinlet_verify_verdict){ 0 };
        t0 = pinlet_now_ms();
        assert_int_equal(pinlet_verify_run(v, NAME, &desc, t0 + 300, &vd, NULL), 0);
        assert_true(pinlet_now_ms() - t0 < 5000);
        assert_false(vd.allow);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

static void test_crash_and_not_executable(void **state)
{
        const char *b = bin("crash");
        char path[1024];
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;

        script(b, "crash", "kill -SEGV $$");
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_false(vd.allow);
        assert_true(vd.results[0].failed);
        assert_string_equal(vd.results[0].reason, "killed by signal 11");
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);

        b = bin("noexec");
        script(b, "plain", "exit 0");
        snprintf(path, sizeof(path), "%s/plain", b);
        assert_int_equal(chmod(path, 0644), 0);
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_false(vd.allow);
        assert_true(vd.results[0].failed);
        assert_non_null(strstr(vd.results[0].reason, "cannot run: Permission denied"));
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
        v = runner(b, 0, 5000, PINLET_FAIL_OPEN);
        run(v, &vd);
        assert_true(vd.allow);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

/* a verifier that writes far more than the cap is read to the end and cut */
static void test_output_bounded(void **state)
{
        const char *b = bin("chatty");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd;

        script(b, "chatty",
               "head -c 1000000 /dev/zero | tr '\\0' x; head -c 1000000 /dev/zero >&2; exit 1");
        v = runner(b, 0, 10000, PINLET_FAIL_CLOSED);
        run(v, &vd);
        assert_false(vd.allow);
        assert_false(vd.results[0].failed);
        assert_int_equal(strlen(vd.results[0].reason), PINLET_VERIFIER_OUTPUT_MAX);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

/* one run for ten verifications; a new verifier set is a new key; missing dir allows */
static void test_cache(void **state)
{
        const char *b = bin("cache");
        struct pinlet_verify *v;
        struct pinlet_verify_verdict vd = { 0 };

        script(b, "ok", "exit 0");
        v = runner(b, 0, 5000, PINLET_FAIL_CLOSED);
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 0);
        for (int i = 0; i < 10; i++) {
                run(v, &vd);
                assert_true(vd.allow);
                assert_true(i == 0 ? !vd.cached : vd.cached);
                pinlet_verify_verdict_done(&vd);
        }
        assert_int_equal(pinlet_verify_runs(v), 1);
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 1);
        assert_true(vd.allow && vd.cached);
        pinlet_verify_verdict_done(&vd);
        /* another name for the same digest is another question */
        assert_int_equal(pinlet_verify_lookup(v, "other/repo:v1", DIGEST, &vd), 0);

        /* a verifier added: the old verdict is not for this set */
        script(b, "zz-deny", "echo nope; exit 1");
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 0);
        run(v, &vd);
        assert_false(vd.allow);
        assert_int_equal(pinlet_verify_runs(v), 3);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);

        /* missing directory: nothing to verify, everything allowed, nothing run */
        v = runner("/nonexistent/pinlet-verifiers", 0, 5000, PINLET_FAIL_CLOSED);
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 1);
        assert_true(vd.allow);
        run(v, &vd);
        assert_true(vd.allow);
        assert_int_equal(vd.n_results, 0);
        assert_int_equal(pinlet_verify_runs(v), 0);
        pinlet_verify_free(v);
        /* and no directory configured */
        v = runner(NULL, 0, 5000, PINLET_FAIL_CLOSED);
        assert_false(pinlet_verify_enabled(v));
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 1);
        assert_true(vd.allow);
        pinlet_verify_free(v);
}

/* deny verdicts expire after deny_ttl (at most 30 s): the verifier runs again */
static void test_deny_ttl(void **state)
{
        const char *b = bin("denyttl");
        struct pinlet_verify *v = NULL;
        struct pinlet_verify_verdict vd = { 0 };
        const struct pinlet_verify_options o = {
                .bin_dir = b,
                .allow_ttl_ms = 600000,
                .deny_ttl_ms = 200,
        };
        int64_t deadline;

        script(b, "no", "exit 1");
        assert_int_equal(pinlet_verify_new(&o, &v, NULL), 0);
        run(v, &vd);
        assert_false(vd.allow);
        pinlet_verify_verdict_done(&vd);
        assert_int_equal(pinlet_verify_lookup(v, NAME, DIGEST, &vd), 1);
        pinlet_verify_verdict_done(&vd);
        deadline = pinlet_now_ms() + 5000;
        while (pinlet_verify_lookup(v, NAME, DIGEST, &vd) == 1) {
                pinlet_verify_verdict_done(&vd);
                assert_true(pinlet_now_ms() < deadline);
                usleep(20000);
        }
        run(v, &vd);
        assert_false(vd.cached);
        assert_int_equal(pinlet_verify_runs(v), 2);
        pinlet_verify_verdict_done(&vd);
        pinlet_verify_free(v);
}

static void test_descriptor_json(void **state)
{
        _cleanup_free_ char *s = pinlet_verify_descriptor_json(&desc);

        assert_string_equal(s, "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                               "\"digest\":\"" DIGEST "\",\"size\":528}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_contract),
                cmocka_unit_test(test_and),
                cmocka_unit_test(test_max),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_crash_and_not_executable),
                cmocka_unit_test(test_output_bounded),
                cmocka_unit_test(test_cache),
                cmocka_unit_test(test_deny_ttl),
                cmocka_unit_test(test_descriptor_json),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
