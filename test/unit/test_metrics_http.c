/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP endpoints of src/metrics, fetched with libcurl over loopback TCP (port 0: the
 * kernel picks) and over a unix socket in a private temporary directory. /healthz's
 * heartbeat window runs on an injected clock: no sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "metrics/metrics.h"
#include "util/error.h"

struct fetch {
        long status;
        char body[1 << 16];
        size_t len;
        char headers[4096];
        size_t hlen;
        curl_off_t content_length;
};

static size_t on_body(char *p, size_t size, size_t n, void *u)
{
        struct fetch *f = u;
        size_t k = size * n;

        if (f->len + k >= sizeof(f->body))
                k = sizeof(f->body) - 1 - f->len;
        memcpy(f->body + f->len, p, k);
        f->len += k;
        f->body[f->len] = '\0';
        return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *u)
{
        struct fetch *f = u;
        size_t k = size * n;

        if (f->hlen + k >= sizeof(f->headers))
                k = sizeof(f->headers) - 1 - f->hlen;
        memcpy(f->headers + f->hlen, p, k);
        f->hlen += k;
        f->headers[f->hlen] = '\0';
        return size * n;
}

/* method: "GET", "HEAD" or anything else (sent as a custom request). unix_path: NULL for
 * TCP. */
static void fetch(struct pinlet_metrics *m, const char *unix_path, const char *method,
                  const char *path, struct fetch *f)
{
        CURL *c = curl_easy_init();
        char url[256];
        CURLcode rc;

        assert_non_null(c);
        memset(f, 0, sizeof(*f));
        if (unix_path) {
                snprintf(url, sizeof(url), "http://localhost%s", path);
                curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path);
        } else {
                snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", pinlet_metrics_port(m), path);
        }
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        if (strcmp(method, "HEAD") == 0)
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        else if (strcmp(method, "GET") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        rc = curl_easy_perform(c);
        if (rc != CURLE_OK)
                fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &f->content_length);
        curl_easy_cleanup(c);
}

static bool has_header(const struct fetch *f, const char *line)
{
        return strcasestr(f->headers, line) != NULL;
}

/* The injected clock and the runtime backend's state. */
struct world {
        _Atomic int64_t now_ms;
        _Atomic bool runtime_up;
};

static int64_t world_clock(void *ctx)
{
        return atomic_load(&((struct world *)ctx)->now_ms);
}

static bool world_backend_up(void *u, enum pinlet_metrics_backend b)
{
        return atomic_load(&((struct world *)u)->runtime_up);
}

static struct pinlet_metrics *start(const char *listen, struct world *w)
{
        static const char *const methods[] = { "PullImage", NULL };
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_metrics *m = NULL;
        int r;

        r = pinlet_metrics_new(
                &(const struct pinlet_metrics_options){
                        .listen = listen,
                        .version = "9.9.9",
                        .cri_methods = methods,
                        .clock = world_clock,
                        .clock_ctx = w,
                        .userdata = w,
                        .backend_up = world_backend_up,
                },
                &m, &err);
        if (r < 0)
                fail_msg("pinlet_metrics_new(%s): %s", listen, pinlet_error_message(err, r));
        return m;
}

static void test_tcp_endpoints(void **state)
{
        struct world w = { .now_ms = 5000 };
        _cleanup_metrics_ struct pinlet_metrics *m = start("127.0.0.1:0", &w);
        char want[64];
        struct fetch f;

        assert_true(pinlet_metrics_port(m) > 0);
        snprintf(want, sizeof(want), "127.0.0.1:%u", pinlet_metrics_port(m));
        assert_string_equal(pinlet_metrics_address(m), want);

        pinlet_metrics_cri_request(m, "/runtime.v1.ImageService/PullImage", 0, 1000);
        fetch(m, NULL, "GET", "/metrics", &f);
        assert_int_equal(f.status, 200);
        assert_true(has_header(&f, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert_non_null(strstr(f.body, "pinlet_build_info{version=\"9.9.9\"} 1\n"));
        assert_non_null(
                strstr(f.body, "pinlet_cri_requests_total{method=\"PullImage\",code=\"OK\"} 1\n"));
        /* A query string does not change the path. */
        fetch(m, NULL, "GET", "/metrics?name[]=x", &f);
        assert_int_equal(f.status, 200);

        /* HEAD: the headers of a GET, no body. */
        fetch(m, NULL, "HEAD", "/metrics", &f);
        assert_int_equal(f.status, 200);
        assert_int_equal(f.len, 0);
        assert_true(f.content_length > 100);

        fetch(m, NULL, "GET", "/", &f);
        assert_int_equal(f.status, 404);
        fetch(m, NULL, "GET", "/metrics/", &f);
        assert_int_equal(f.status, 404);
        fetch(m, NULL, "POST", "/nope", &f);
        assert_int_equal(f.status, 404);

        static const char *const refused[] = { "POST", "PUT", "DELETE", "OPTIONS", "PATCH" };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                fetch(m, NULL, refused[i], "/metrics", &f);
                assert_int_equal(f.status, 405);
                assert_true(has_header(&f, "Allow: GET, HEAD\r\n"));
                fetch(m, NULL, refused[i], "/healthz", &f);
                assert_int_equal(f.status, 405);
        }
}

/* /healthz follows the heartbeat on the injected clock: 503 before the first one, 200 up
 * to heartbeat_max_age_ms after the last, 503 one millisecond later. */
static void test_healthz_heartbeat(void **state)
{
        struct world w = { .now_ms = 100000 };
        _cleanup_metrics_ struct pinlet_metrics *m = start("127.0.0.1:0", &w);
        struct fetch f;

        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 503);
        assert_string_equal(f.body, "no heartbeat yet from the completion-queue thread\n");

        pinlet_metrics_heartbeat(m);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 200);
        assert_string_equal(f.body, "ok\n");

        atomic_store(&w.now_ms, 100000 + PINLET_METRICS_DEFAULT_HEARTBEAT_MAX_AGE_MS);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 200);

        /* The completion-queue loop stopped calling: unhealthy, and the body says since
         * when. */
        atomic_store(&w.now_ms, 100000 + PINLET_METRICS_DEFAULT_HEARTBEAT_MAX_AGE_MS + 1);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 503);
        assert_string_equal(f.body, "completion-queue thread silent for 1001 ms (limit 1000 ms)\n");
        fetch(m, NULL, "HEAD", "/healthz", &f);
        assert_int_equal(f.status, 503);

        /* It answers again: healthy again. */
        pinlet_metrics_heartbeat(m);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 200);
}

static void test_healthz_custom_window(void **state)
{
        struct world w = { .now_ms = 0 };
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;
        struct fetch f;

        assert_int_equal(pinlet_metrics_new(
                                 &(const struct pinlet_metrics_options){
                                         .listen = "127.0.0.1:0",
                                         .heartbeat_max_age_ms = 3000,
                                         .clock = world_clock,
                                         .clock_ctx = &w,
                                 },
                                 &m, &err),
                         0);
        pinlet_metrics_heartbeat(m);
        atomic_store(&w.now_ms, 2999);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 200);
        atomic_store(&w.now_ms, 3001);
        fetch(m, NULL, "GET", "/healthz", &f);
        assert_int_equal(f.status, 503);
}

/* /readyz: the CRI socket listens AND the runtime backend is up; the body names what is
 * missing. */
static void test_readyz(void **state)
{
        struct world w = { .now_ms = 1 };
        _cleanup_metrics_ struct pinlet_metrics *m = start("127.0.0.1:0", &w);
        struct fetch f;

        fetch(m, NULL, "GET", "/readyz", &f);
        assert_int_equal(f.status, 503);
        assert_string_equal(f.body,
                            "not listening on the CRI socket\nruntime backend not connected\n");

        pinlet_metrics_set_ready(m, true);
        fetch(m, NULL, "GET", "/readyz", &f);
        assert_int_equal(f.status, 503);
        assert_string_equal(f.body, "runtime backend not connected\n");

        atomic_store(&w.runtime_up, true);
        fetch(m, NULL, "GET", "/readyz", &f);
        assert_int_equal(f.status, 200);
        assert_string_equal(f.body, "ready\n");
        fetch(m, NULL, "GET", "/metrics", &f);
        assert_non_null(strstr(f.body, "pinlet_backend_up{backend=\"runtime\"} 1\n"));

        /* Shutdown begins. */
        pinlet_metrics_set_ready(m, false);
        fetch(m, NULL, "GET", "/readyz", &f);
        assert_int_equal(f.status, 503);
        assert_string_equal(f.body, "not listening on the CRI socket\n");
}

static void test_unix_socket(void **state)
{
        char dir[] = "/tmp/pinlet-metrics-XXXXXX", path[128], listen[160];
        struct world w = { .now_ms = 1 };
        struct pinlet_metrics *m;
        struct fetch f;
        struct stat st;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/metrics.sock", dir);
        snprintf(listen, sizeof(listen), "unix:%s", path);

        /* A stale socket (an earlier run that was killed) is replaced. */
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);

                assert_true(fd >= 0);
                memcpy(sa.sun_path, path, strlen(path));
                assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
                close(fd);
                assert_int_equal(stat(path, &st), 0);
        }
        m = start(listen, &w);
        assert_int_equal(pinlet_metrics_port(m), 0);
        assert_string_equal(pinlet_metrics_address(m), listen);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0660);
        fetch(m, path, "GET", "/metrics", &f);
        assert_int_equal(f.status, 200);
        assert_non_null(strstr(f.body, "pinlet_build_info{version=\"9.9.9\"} 1\n"));
        fetch(m, path, "GET", "/healthz", &f);
        assert_int_equal(f.status, 503);
        pinlet_metrics_free(m);
        /* Removed at free. */
        assert_int_equal(stat(path, &st), -1);

        /* Something else at the path is never removed. */
        {
                _cleanup_error_ struct pinlet_error *err = NULL;
                FILE *file = fopen(path, "w");

                assert_non_null(file);
                fclose(file);
                m = NULL;
                assert_int_equal(pinlet_metrics_new(
                                         &(const struct pinlet_metrics_options){ .listen = listen },
                                         &m, &err),
                                 -EEXIST);
                assert_null(m);
                assert_non_null(strstr(err->message, "not a socket"));
                assert_int_equal(stat(path, &st), 0);
                assert_true(S_ISREG(st.st_mode));
                unlink(path);
        }
        rmdir(dir);
}

static void test_bad_listen(void **state)
{
        static const char *const bad[] = {
                "nonsense", "127.0.0.1",       "127.0.0.1:",     ":9464", "[::1]9464",
                "::1:9464", "127.0.0.1:99999", "127.0.0.1:http", "unix:",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_error_ struct pinlet_error *err = NULL;
                struct pinlet_metrics *m = NULL;
                int r = pinlet_metrics_new(
                        &(const struct pinlet_metrics_options){ .listen = bad[i] }, &m, &err);

                if (r != -EINVAL)
                        fail_msg("%s: %d", bad[i], r);
                assert_null(m);
                assert_non_null(err);
                assert_non_null(strstr(err->message, "metrics.listen"));
        }
}

/* A port in use is an error naming the address (a second daemon, a typo'd port). */
static void test_port_in_use(void **state)
{
        struct world w = { .now_ms = 1 };
        _cleanup_metrics_ struct pinlet_metrics *first = start("127.0.0.1:0", &w);
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_metrics *second = NULL;
        char listen[64];

        snprintf(listen, sizeof(listen), "127.0.0.1:%u", pinlet_metrics_port(first));
        assert_int_equal(
                pinlet_metrics_new(&(const struct pinlet_metrics_options){ .listen = listen },
                                   &second, &err),
                -EADDRINUSE);
        assert_null(second);
        assert_non_null(strstr(err->message, listen));
}

/* Without listen: counters only, no server. */
static void test_no_listen(void **state)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        _cleanup_metrics_ struct pinlet_metrics *m = NULL;

        assert_int_equal(pinlet_metrics_new(&(const struct pinlet_metrics_options){ .listen = "" },
                                            &m, &err),
                         0);
        assert_null(pinlet_metrics_address(m));
        assert_int_equal(pinlet_metrics_port(m), 0);
}

static int setup(void **state)
{
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
        curl_global_cleanup();
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tcp_endpoints),
                cmocka_unit_test(test_healthz_heartbeat),
                cmocka_unit_test(test_healthz_custom_window),
                cmocka_unit_test(test_readyz),
                cmocka_unit_test(test_unix_socket),
                cmocka_unit_test(test_bad_listen),
                cmocka_unit_test(test_port_in_use),
                cmocka_unit_test(test_no_listen),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
