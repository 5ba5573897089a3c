/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proxy transparency against the fake CRI backend (label `fake`).
 *
 * Every property is checked by making the SAME call twice, first directly to the fake
 * backend and then through `pinlet serve`, and comparing what the client got (status
 * code, status message, every response message byte for byte and in order, initial and
 * trailing metadata) and what the backend got (method, metadata, deadline, message count,
 * sizes and a sha256 of all request bytes, cancellation), as the fake logs it.
 *
 * Keys excluded from the metadata comparisons (transport keys gRPC itself sets, which a
 * proxy legitimately replaces with its own): "user-agent" (and its echo
 * "echo-user-agent"). Nothing else is excluded. The other keys gRPC sets on the wire
 * (":authority", ":path", "content-type", "te", "grpc-timeout", "grpc-encoding",
 * "grpc-accept-encoding", "grpc-status", "grpc-message") never reach an application on
 * gRPC core: they are consumed by the transport, and compared through what they carry
 * (method, deadline, status). The :authority the backend sees through pinlet is not
 * compared (pinlet dials its own channel); the test_authority_socket_path case checks
 * that a client sending the socket path as :authority is served.
 *
 * Usage: test_proxy_fake GROUP PINLET_BINARY FAKE_BACKEND_BINARY
 *   GROUP: passthrough | backend_down | backend_killed | sigterm
 * Every process is started in a private mktemp directory, with PR_SET_PDEATHSIG so it
 * dies with the test even when ctest kills it, and stopped by PID in the group teardown
 * and again from atexit().
 *
 * PINLET_TEST_KEEP=1 keeps the temporary directory (logs, the fakes' JSON lines);
 * PINLET_TEST_VERBOSE=1 prints every process's stderr even when all passed (on failure it
 * is always printed).
 *
 * Development aid (never set by ctest): PINLET_FAKE_SELFTEST=1 runs the passthrough
 * group with the "proxied" channel pointed at the fake itself, to check the suite's own
 * expectations without pinlet.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <grpc/status.h>
#include <jansson.h>

#include "grpc_client.h"

#define MiB             (1024 * 1024)
#define MAX_MESSAGE     (20 * MiB)
#define WAIT_LIMIT_MS   20000 /* the client's own safety net, far above any expectation */
#define RECORD_WAIT_MS  5000  /* how long to wait for the fake to log a call */
#define STARTUP_WAIT_MS 10000

/* ---- processes and the temporary directory ---------------------------------------- */

static const char *pinlet_bin, *fake_bin;
static char tmpdir[64];
static bool selftest;

#define MAX_PROCS 8
static struct proc {
        pid_t pid;
        char name[32];
        char log[256];
} procs[MAX_PROCS];

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static char *path_in(const char *name)
{
        char *p;
        if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
                abort();
        return p;
}

static void dump_file(const char *title, const char *path)
{
        FILE *f = fopen(path, "re");
        char line[4096];
        if (!f)
                return;
        fprintf(stderr, "---- %s (%s) ----\n", title, path);
        while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
        fclose(f);
}

static struct proc *spawn(const char *name, char *const argv[])
{
        struct proc *p = NULL;
        pid_t pid;

        for (size_t i = 0; i < MAX_PROCS; i++)
                if (procs[i].pid == 0) {
                        p = &procs[i];
                        break;
                }
        assert_non_null(p);
        snprintf(p->name, sizeof(p->name), "%s", name);
        snprintf(p->log, sizeof(p->log), "%s/%s.stderr", tmpdir, name);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                sigset_t none;
                if (fd < 0)
                        _exit(127);
                dup2(fd, 1);
                dup2(fd, 2);
                /* dies with the test, even when ctest SIGKILLs it */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                execv(argv[0], argv);
                _exit(127);
        }
        p->pid = pid;
        return p;
}

/* Waits for p to exit within timeout_ms; returns the wait status or -1 (still running). */
static int reap(struct proc *p, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;
        int st;

        for (;;) {
                pid_t r = waitpid(p->pid, &st, WNOHANG);
                if (r == p->pid) {
                        p->pid = 0;
                        return st;
                }
                if (now_ms() >= end)
                        return -1;
                sleep_ms(20);
        }
}

/* Stops p by PID: SIGTERM, then SIGKILL after 5 s. Returns the wait status. */
static int stop(struct proc *p)
{
        int st;

        if (!p || p->pid == 0)
                return 0;
        kill(p->pid, SIGTERM);
        st = reap(p, 5000);
        if (st == -1) {
                fprintf(stderr, "%s (pid %d) ignored SIGTERM, killing\n", p->name, p->pid);
                kill(p->pid, SIGKILL);
                st = reap(p, 5000);
        }
        return st;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void kill_all(void)
{
        for (size_t i = 0; i < MAX_PROCS; i++)
                if (procs[i].pid > 0) {
                        kill(procs[i].pid, SIGKILL);
                        waitpid(procs[i].pid, NULL, 0);
                        procs[i].pid = 0;
                }
}

/* Kills what is left and removes the temporary directory (atexit, signals). */
static void cleanup_all(void)
{
        kill_all();
        if (tmpdir[0]) {
                if (getenv("PINLET_TEST_KEEP"))
                        fprintf(stderr, "keeping %s\n", tmpdir);
                else
                        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
                tmpdir[0] = 0;
        }
}

static void dump_logs(void)
{
        for (size_t i = 0; i < MAX_PROCS; i++)
                if (procs[i].name[0])
                        dump_file(procs[i].name, procs[i].log);
}

/* A unix socket is ready when connect(2) succeeds. */
static bool socket_ready(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, r;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        return r == 0;
}

static void wait_socket(struct proc *p, const char *path)
{
        int64_t end = now_ms() + STARTUP_WAIT_MS;
        int st;

        while (!socket_ready(path)) {
                if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
                        p->pid = 0;
                        dump_file(p->name, p->log);
                        fail_msg("%s exited (status 0x%x) before serving %s", p->name, st, path);
                }
                if (now_ms() > end) {
                        dump_file(p->name, p->log);
                        fail_msg("%s: socket %s not ready after %d ms", p->name, path,
                                 STARTUP_WAIT_MS);
                }
                sleep_ms(20);
        }
}

static struct proc *start_fake(const char *name, const char *sock, const char *log)
{
        char *argv[] = { (char *)fake_bin, "--socket", (char *)sock, "--log",
                         (char *)log,      "--name",   (char *)name, NULL };
        struct proc *p = spawn(name, argv);
        wait_socket(p, sock);
        return p;
}

/* ---- the test environment ----------------------------------------------------------- */

struct env {
        char *rt_sock, *img_sock, *pinlet_sock;
        char *rt_target, *img_target, *pinlet_target;
        char *rt_log, *img_log, *config;
        struct proc *rt, *img, *pinlet;
        struct pinlet_tgrpc_channel *direct_rt, *direct_img, *proxy;
};

static struct env E;
static int teardown_failed;

static void make_env(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/pinlet-fake-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        E.rt_sock = path_in("backend.sock");
        E.img_sock = path_in("image.sock");
        E.pinlet_sock = path_in("pinlet.sock");
        E.rt_log = path_in("backend.jsonl");
        E.img_log = path_in("image.jsonl");
        E.config = path_in("config.yaml");
        assert_true(asprintf(&E.rt_target, "unix://%s", E.rt_sock) > 0);
        assert_true(asprintf(&E.img_target, "unix://%s", E.img_sock) > 0);
        assert_true(asprintf(&E.pinlet_target, "unix:%s", E.pinlet_sock) > 0);
}

static struct proc *start_pinlet(bool with_image_endpoint)
{
        char *state = path_in("state"), *audit = path_in("audit.jsonl");
        char *argv[20];
        size_t n = 0;
        FILE *f;

        /* a short grace so the SIGTERM test stays quick; everything else at defaults */
        f = fopen(E.config, "we");
        assert_non_null(f);
        fprintf(f, "shutdown_grace: 3s\n");
        fclose(f);
        argv[n++] = (char *)pinlet_bin;
        argv[n++] = "serve";
        argv[n++] = "--config";
        argv[n++] = E.config;
        argv[n++] = "--listen";
        argv[n++] = E.pinlet_sock;
        argv[n++] = "--runtime-endpoint";
        argv[n++] = E.rt_target;
        if (with_image_endpoint) {
                argv[n++] = "--image-endpoint";
                argv[n++] = E.img_target;
        }
        argv[n++] = "--state-dir";
        argv[n++] = state;
        argv[n++] = "--audit-log";
        argv[n++] = audit;
        argv[n++] = "--log-level";
        argv[n++] = "debug";
        argv[n] = NULL;
        struct proc *p = spawn("pinlet", argv);
        wait_socket(p, E.pinlet_sock);
        free(state);
        free(audit);
        return p;
}

static struct pinlet_tgrpc_channel *channel(const char *target, const char *authority)
{
        struct pinlet_tgrpc_channel *ch = pinlet_tgrpc_connect(target, MAX_MESSAGE, authority);
        assert_non_null(ch);
        return ch;
}

static int teardown_env(void **state)
{
        int failed = 0;

        pinlet_tgrpc_channel_free(E.direct_rt);
        pinlet_tgrpc_channel_free(E.direct_img);
        pinlet_tgrpc_channel_free(E.proxy);
        E.direct_rt = E.direct_img = E.proxy = NULL;
        /* pinlet first, so it does not see its backends vanish */
        if (E.pinlet && E.pinlet->pid) {
                int st = stop(E.pinlet);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "pinlet did not exit 0 on SIGTERM (status 0x%x)\n", st);
                        failed = 1;
                }
        }
        /* the fakes too must stop cleanly (under ASan a leak makes this fail) */
        struct proc *fakes[] = { E.rt, E.img };
        for (size_t i = 0; i < 2; i++) {
                if (!fakes[i] || fakes[i]->pid == 0)
                        continue;
                int st = stop(fakes[i]);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        fprintf(stderr, "%s did not exit 0 on SIGTERM (status 0x%x)\n",
                                fakes[i]->name, st);
                        failed = 1;
                }
        }
        if (getenv("PINLET_TEST_VERBOSE"))
                dump_logs();
        free(E.rt_sock);
        free(E.img_sock);
        free(E.pinlet_sock);
        free(E.rt_target);
        free(E.img_target);
        free(E.pinlet_target);
        free(E.rt_log);
        free(E.img_log);
        free(E.config);
        memset(&E, 0, sizeof(E));
        kill_all();
        /* the directory (with the logs main() dumps on failure) goes at exit */
        /* cmocka 1.1 reports a failed group teardown but does not count it in its return
         * value: main() checks this flag too */
        teardown_failed |= failed;
        return failed ? -1 : 0;
}

static int setup_passthrough(void **state)
{
        make_env();
        E.rt = start_fake("backend", E.rt_sock, E.rt_log);
        E.img = start_fake("image", E.img_sock, E.img_log);
        E.direct_rt = channel(E.rt_target, NULL);
        E.direct_img = channel(E.img_target, NULL);
        if (selftest) {
                E.proxy = channel(E.rt_target, NULL);
        } else {
                E.pinlet = start_pinlet(true);
                E.proxy = channel(E.pinlet_target, NULL);
        }
        return 0;
}

/* ---- metadata and messages ---------------------------------------------------------- */

struct mdb {
        struct pinlet_tgrpc_md md[24];
        size_t n;
};

static void mdb_add_bytes(struct mdb *b, const char *key, const void *v, size_t len)
{
        assert_true(b->n < sizeof(b->md) / sizeof(b->md[0]));
        b->md[b->n++] = (struct pinlet_tgrpc_md){ key, v, len };
}

static void mdb_add(struct mdb *b, const char *key, const char *v)
{
        mdb_add_bytes(b, key, v, strlen(v));
}

static const uint8_t bin_value[] = { 0x00, 0xff, 0x10, 0x80, 'a', 0x00, 0x7f, 0xc3 };
static char long_value[4097];

/* Application metadata every comparison call carries: ascii, binary (with NUL and
 * high bytes), a key given twice (order must survive), a 4 KiB value. */
static void mdb_common(struct mdb *b, const char *id, const char *mode)
{
        if (!long_value[0])
                for (size_t i = 0; i < sizeof(long_value) - 1; i++)
                        long_value[i] = (char)('a' + i % 26);
        mdb_add(b, "x-fake-id", id);
        mdb_add(b, "x-fake-mode", mode);
        mdb_add(b, "custom-key", "some value, with spaces");
        mdb_add_bytes(b, "trace-bin", bin_value, sizeof(bin_value));
        mdb_add(b, "dup-key", "first");
        mdb_add(b, "dup-key", "second");
        mdb_add(b, "long-value", long_value);
}

static bool transport_key(const char *k)
{
        return strcmp(k, "user-agent") == 0 || strcmp(k, "echo-user-agent") == 0;
}

static void fmt_md(char *buf, size_t size, const struct pinlet_tgrpc_md *md, size_t n)
{
        size_t off = 0;
        buf[0] = 0;
        for (size_t i = 0; i < n && off < size; i++)
                off += (size_t)snprintf(buf + off, size - off, "%s%s(%zu)", i ? "," : "", md[i].key,
                                        md[i].value_len);
}

/* Compares two metadata lists in order, transport keys excluded. */
static void assert_md_equal(const char *what, const char *which, const struct pinlet_tgrpc_md *a,
                            size_t na, const struct pinlet_tgrpc_md *b, size_t nb)
{
        size_t i = 0, j = 0;
        char sa[2048], sb[2048];

        fmt_md(sa, sizeof(sa), a, na);
        fmt_md(sb, sizeof(sb), b, nb);
        for (;;) {
                while (i < na && transport_key(a[i].key))
                        i++;
                while (j < nb && transport_key(b[j].key))
                        j++;
                if (i == na || j == nb)
                        break;
                if (strcmp(a[i].key, b[j].key) != 0 || a[i].value_len != b[j].value_len ||
                    memcmp(a[i].value, b[j].value, a[i].value_len) != 0)
                        fail_msg("%s: %s metadata differ at %s / %s\n direct:  %s\n proxied: %s",
                                 what, which, a[i].key, b[j].key, sa, sb);
                i++;
                j++;
        }
        if (i != na || j != nb)
                fail_msg("%s: %s metadata: different entries\n direct:  %s\n proxied: %s", what,
                         which, sa, sb);
}

/* What the client saw directly and through pinlet must be identical. */
static void assert_same_result(const char *what, const struct pinlet_tgrpc_result *d,
                               const struct pinlet_tgrpc_result *p)
{
        if (d->timed_out || p->timed_out)
                fail_msg("%s: client wait limit reached (direct %d, proxied %d)", what,
                         d->timed_out, p->timed_out);
        if (d->status != p->status)
                fail_msg("%s: status direct %s \"%s\", proxied %s \"%s\"", what,
                         pinlet_tgrpc_status_name(d->status), d->details,
                         pinlet_tgrpc_status_name(p->status), p->details);
        if (strcmp(d->details, p->details) != 0)
                fail_msg("%s: status message direct \"%s\", proxied \"%s\"", what, d->details,
                         p->details);
        if (d->n_messages != p->n_messages)
                fail_msg("%s: %zu response messages direct, %zu proxied", what, d->n_messages,
                         p->n_messages);
        for (size_t i = 0; i < d->n_messages; i++)
                if (d->messages[i].len != p->messages[i].len ||
                    memcmp(d->messages[i].data, p->messages[i].data, d->messages[i].len) != 0)
                        fail_msg("%s: response message %zu differs (%zu bytes direct, %zu "
                                 "proxied)",
                                 what, i, d->messages[i].len, p->messages[i].len);
        assert_md_equal(what, "initial", d->initial_md, d->n_initial_md, p->initial_md,
                        p->n_initial_md);
        assert_md_equal(what, "trailing", d->trailing_md, d->n_trailing_md, p->trailing_md,
                        p->n_trailing_md);
}

/* ---- the fake's log ------------------------------------------------------------------ */

/* The nth (0-based) record of event with x-fake-id id in log, waiting for it to appear. */
static json_t *find_record(const char *log, const char *event, const char *id, int nth,
                           int64_t wait_ms)
{
        int64_t end = now_ms() + wait_ms;

        for (;;) {
                FILE *f = fopen(log, "re");
                char *line = NULL;
                size_t cap = 0;
                int seen = 0;

                while (f && getline(&line, &cap, f) > 0) {
                        json_t *o = json_loads(line, 0, NULL);
                        if (!o)
                                continue;
                        if (strcmp(json_string_value(json_object_get(o, "event")), event) == 0 &&
                            strcmp(json_string_value(json_object_get(o, "id")), id) == 0 &&
                            seen++ == nth) {
                                free(line);
                                fclose(f);
                                return o;
                        }
                        json_decref(o);
                }
                free(line);
                if (f)
                        fclose(f);
                if (now_ms() >= end)
                        return NULL;
                sleep_ms(20);
        }
}

static json_t *must_find(const char *log, const char *event, const char *id, int nth)
{
        json_t *o = find_record(log, event, id, nth, RECORD_WAIT_MS);
        if (!o) {
                dump_file("fake log", log);
                fail_msg("no \"%s\" record #%d for id %s in %s", event, nth, id, log);
        }
        return o;
}

/* Counts records of event in log matching method (NULL: any). */
static int count_records(const char *log, const char *event, const char *id)
{
        FILE *f = fopen(log, "re");
        char *line = NULL;
        size_t cap = 0;
        int n = 0;

        while (f && getline(&line, &cap, f) > 0) {
                json_t *o = json_loads(line, 0, NULL);
                if (!o)
                        continue;
                if (strcmp(json_string_value(json_object_get(o, "event")), event) == 0 &&
                    (!id || strcmp(json_string_value(json_object_get(o, "id")), id) == 0))
                        n++;
                json_decref(o);
        }
        free(line);
        if (f)
                fclose(f);
        return n;
}

static const char *jstr(json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "(none)";
}

static json_t *filtered_md(json_t *md)
{
        json_t *out = json_array();
        size_t i;
        json_t *kv;

        json_array_foreach(md, i, kv)
        {
                if (!transport_key(json_string_value(json_array_get(kv, 0))))
                        json_array_append(out, kv);
        }
        return out;
}

/* What the backend received directly and through pinlet must be identical (deadline:
 * see assert_deadline). */
static void assert_same_record(const char *what, json_t *d, json_t *p)
{
        static const char *const same[] = { "method", "mode",   "messages",  "sizes",
                                            "sha256", "status", "cancelled", NULL };
        for (size_t i = 0; same[i]; i++) {
                json_t *a = json_object_get(d, same[i]), *b = json_object_get(p, same[i]);
                if (!json_equal(a, b)) {
                        char *sa = json_dumps(a, JSON_ENCODE_ANY),
                             *sb = json_dumps(b, JSON_ENCODE_ANY);
                        fail_msg("%s: backend saw %s %s directly, %s through pinlet", what, same[i],
                                 sa, sb);
                }
        }
        json_t *ma = filtered_md(json_object_get(d, "metadata"));
        json_t *mb = filtered_md(json_object_get(p, "metadata"));
        if (!json_equal(ma, mb)) {
                char *sa = json_dumps(ma, 0), *sb = json_dumps(mb, 0);
                fail_msg("%s: backend request metadata differ\n direct:  %s\n proxied: %s", what,
                         sa, sb);
        }
        json_decref(ma);
        json_decref(mb);
}

/* The deadline the backend saw through pinlet: none when the client set none, otherwise
 * at most the client's timeout (+200 ms: gRPC core's server rounds the grpc-timeout it
 * decodes up; 10000 ms arrives as up to 10099 ms directly) and at least the
 * timeout minus 1000 ms (time spent in the proxy). */
static void assert_deadline(const char *what, json_t *rec, int64_t timeout_ms)
{
        json_t *d = json_object_get(rec, "deadline_ms");

        if (timeout_ms <= 0) {
                if (!json_is_null(d))
                        fail_msg("%s: client set no deadline, backend saw %lld ms", what,
                                 (long long)json_integer_value(d));
                return;
        }
        if (!json_is_integer(d))
                fail_msg("%s: client set a %lld ms deadline, backend saw none", what,
                         (long long)timeout_ms);
        int64_t left = json_integer_value(d);
        if (left > timeout_ms + 200 || left < timeout_ms - 1000)
                fail_msg("%s: client set a %lld ms deadline, backend saw %lld ms left", what,
                         (long long)timeout_ms, (long long)left);
}

/* ---- running a call both ways --------------------------------------------------------- */

static void run(struct pinlet_tgrpc_channel *ch, const struct pinlet_tgrpc_call_opts *o,
                struct pinlet_tgrpc_result *r)
{
        struct pinlet_tgrpc_call_opts copy = *o;
        if (copy.wait_limit_ms <= 0)
                copy.wait_limit_ms = WAIT_LIMIT_MS;
        int rc = pinlet_tgrpc_call(ch, &copy, r);
        if (rc < 0)
                fail_msg("%s: the call could not run: %s (%d)", o->method, r->details, rc);
}

struct both {
        struct pinlet_tgrpc_result d, p;
        json_t *rd, *rp; /* the backend's "call" records */
};

static void both_free(struct both *b)
{
        pinlet_tgrpc_result_free(&b->d);
        pinlet_tgrpc_result_free(&b->p);
        json_decref(b->rd);
        json_decref(b->rp);
}

/* Runs o directly on `direct` (logging to log) then through pinlet, and compares
 * everything. o must carry a unique x-fake-id (id). */
static void run_both(const char *id, struct pinlet_tgrpc_channel *direct, const char *log,
                     const struct pinlet_tgrpc_call_opts *o, struct both *b)
{
        memset(b, 0, sizeof(*b));
        run(direct, o, &b->d);
        b->rd = must_find(log, "call", id, 0);
        run(E.proxy, o, &b->p);
        b->rp = must_find(log, "call", id, 1);
        assert_same_result(id, &b->d, &b->p);
        assert_same_record(id, b->rd, b->rp);
        assert_deadline(id, b->rp, o->timeout_ms);
}

static void assert_status(const char *what, const struct pinlet_tgrpc_result *r, int status)
{
        if (r->status != status)
                fail_msg("%s: expected %s, got %s \"%s\"", what, pinlet_tgrpc_status_name(status),
                         pinlet_tgrpc_status_name(r->status), r->details);
}

#define ONE(buf, n) (&(struct pinlet_tgrpc_msg){ (const uint8_t *)(buf), (n) }), 1

/* ---- passthrough tests --------------------------------------------------------------- */

static void unary_echo(const char *id, const char *method, int64_t timeout)
{
        struct mdb b = { 0 };
        struct both r;
        static const char req[] = "\x0a\x05hello\x12\x00\xff binary request";

        mdb_common(&b, id, "echo");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                            .method = method,
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE(req, sizeof(req) - 1),
                                            .timeout_ms = timeout };
        run_both(id, E.direct_rt, E.rt_log, &o, &r);
        assert_status(id, &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, 1);
        assert_memory_equal(r.p.messages[0].data, req, sizeof(req) - 1);
        /* the echo proves the application metadata reached the backend and came back */
        const struct pinlet_tgrpc_md *m =
                pinlet_tgrpc_md_find(r.p.trailing_md, r.p.n_trailing_md, "echo-trace-bin");
        assert_non_null(m);
        assert_int_equal(m->value_len, sizeof(bin_value));
        assert_memory_equal(m->value, bin_value, sizeof(bin_value));
        assert_string_equal(jstr(r.rp, "method"), method);
        both_free(&r);
}

static void test_unary_known_method(void **state)
{
        unary_echo("unary-known", "/runtime.v1.RuntimeService/Version", 10000);
}

static void test_unary_unknown_method(void **state)
{
        unary_echo("unary-unknown", "/made.up.v9.Service/Anything", 10000);
}

static void test_unary_v1alpha2(void **state)
{
        unary_echo("unary-v1alpha2", "/runtime.v1alpha2.RuntimeService/Version", 10000);
        unary_echo("unary-v1alpha2-list", "/runtime.v1alpha2.RuntimeService/ListContainers", 10000);
}

static void test_unary_no_deadline(void **state)
{
        unary_echo("unary-no-deadline", "/runtime.v1.RuntimeService/Version", 0);
}

static void test_unary_empty_message(void **state)
{
        struct mdb b = { 0 };
        struct both r;

        mdb_common(&b, "unary-empty", "echo");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                            .method = "/runtime.v1.RuntimeService/Status",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("", 0),
                                            .timeout_ms = 10000 };
        run_both("unary-empty", E.direct_rt, E.rt_log, &o, &r);
        assert_status("unary-empty", &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, 1);
        assert_int_equal(r.p.messages[0].len, 0);
        both_free(&r);
}

/* Above pinlet's max_message_size (16 MiB by default, kubelet's own limit) a request is
 * refused with RESOURCE_EXHAUSTED before it reaches the backend, and an oversized response
 * from the backend ends the call with RESOURCE_EXHAUSTED (the fake itself takes 20 MiB). */
static void test_message_limit(void **state)
{
        size_t n = 17 * MiB;
        uint8_t *big = calloc(1, n);
        struct pinlet_tgrpc_result r;
        struct mdb b = { 0 };

        if (selftest) {
                free(big);
                return; /* the limit is pinlet's */
        }
        assert_non_null(big);
        mdb_common(&b, "over-limit-request", "echo");
        assert_int_equal(pinlet_tgrpc_unary(E.proxy, "/runtime.v1.RuntimeService/Version", big, n,
                                            b.md, b.n, 30000, &r),
                         0);
        free(big);
        assert_false(r.timed_out);
        assert_status("17 MiB request", &r, GRPC_STATUS_RESOURCE_EXHAUSTED);
        pinlet_tgrpc_result_free(&r);
        if (count_records(E.rt_log, "call", "over-limit-request") != 0)
                fail_msg("a 17 MiB request reached the backend through pinlet");

        memset(&b, 0, sizeof(b));
        mdb_common(&b, "over-limit-response", "echo");
        mdb_add(&b, "x-fake-size", "17825792");
        assert_int_equal(pinlet_tgrpc_unary(E.proxy, "/runtime.v1.RuntimeService/Version", "x", 1,
                                            b.md, b.n, 30000, &r),
                         0);
        assert_false(r.timed_out);
        assert_status("17 MiB response", &r, GRPC_STATUS_RESOURCE_EXHAUSTED);
        assert_int_equal(r.n_messages, 0);
        pinlet_tgrpc_result_free(&r);
}

static void test_large_messages(void **state)
{
        size_t n = 15 * MiB;
        uint8_t *big = malloc(n);
        struct mdb b = { 0 };
        struct both r;

        assert_non_null(big);
        for (size_t i = 0; i < n; i++)
                big[i] = (uint8_t)(i * 7 + (i >> 13));
        /* 15 MiB request, echoed: 15 MiB each way */
        mdb_common(&b, "large-request", "echo");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                            .method = "/runtime.v1.RuntimeService/Version",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE(big, n),
                                            .timeout_ms = 30000 };
        run_both("large-request", E.direct_rt, E.rt_log, &o, &r);
        assert_status("large-request", &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, 1);
        assert_int_equal(r.p.messages[0].len, n);
        assert_memory_equal(r.p.messages[0].data, big, n);
        both_free(&r);
        free(big);

        /* small request, 15 MiB response */
        memset(&b, 0, sizeof(b));
        mdb_common(&b, "large-response", "echo");
        mdb_add(&b, "x-fake-size", "15728640");
        struct pinlet_tgrpc_call_opts o2 = { .kind = PINLET_TGRPC_UNARY,
                                             .method = "/made.up.v9.Service/Big",
                                             .metadata = b.md,
                                             .n_metadata = b.n,
                                             .messages = ONE("x", 1),
                                             .timeout_ms = 30000 };
        run_both("large-response", E.direct_rt, E.rt_log, &o2, &r);
        assert_status("large-response", &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, 1);
        assert_int_equal(r.p.messages[0].len, 15728640);
        both_free(&r);
}

static void server_stream(const char *id, const char *method, const char *count, const char *size)
{
        struct mdb b = { 0 };
        struct both r;
        long want = strtol(count, NULL, 10);

        mdb_common(&b, id, "stream");
        mdb_add(&b, "x-fake-count", count);
        if (size)
                mdb_add(&b, "x-fake-size", size);
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_SERVER_STREAM,
                                            .method = method,
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("req", 3),
                                            .timeout_ms = 20000 };
        run_both(id, E.direct_rt, E.rt_log, &o, &r);
        assert_status(id, &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, (size_t)want);
        if (!size)
                for (long i = 0; i < want; i++) {
                        char exp[64];
                        int n = snprintf(exp, sizeof(exp), "stream-message-%ld", i);
                        assert_int_equal(r.p.messages[i].len, (size_t)n);
                        assert_memory_equal(r.p.messages[i].data, exp, (size_t)n);
                }
        both_free(&r);
}

static void test_server_stream(void **state)
{
        server_stream("stream-events", "/runtime.v1.RuntimeService/GetContainerEvents", "25", NULL);
        server_stream("stream-unknown", "/made.up.v9.Service/Watch", "5", NULL);
        server_stream("stream-zero", "/made.up.v9.Service/Watch", "0", NULL);
        server_stream("stream-big", "/made.up.v9.Service/Watch", "3", "2097152");
}

static void test_client_stream(void **state)
{
        static uint8_t chunk[MiB];
        struct pinlet_tgrpc_msg msgs[7];
        static const char *const small[] = { "one", "", "three", "\x00\x01\x02", "five" };
        struct mdb b = { 0 };
        struct both r;

        for (size_t i = 0; i < sizeof(chunk); i++)
                chunk[i] = (uint8_t)(i ^ (i >> 8));
        for (size_t i = 0; i < 5; i++)
                msgs[i] = (struct pinlet_tgrpc_msg){ (const uint8_t *)small[i],
                                                     i == 3 ? 3 : strlen(small[i]) };
        msgs[5] = (struct pinlet_tgrpc_msg){ chunk, sizeof(chunk) };
        msgs[6] = (struct pinlet_tgrpc_msg){ chunk, 100 };
        mdb_common(&b, "client-stream", "client-stream");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_CLIENT_STREAM,
                                            .method = "/made.up.v9.Service/Upload",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = msgs,
                                            .n_messages = 7,
                                            .timeout_ms = 20000 };
        run_both("client-stream", E.direct_rt, E.rt_log, &o, &r);
        assert_status("client-stream", &r.p, GRPC_STATUS_OK);
        assert_int_equal(json_integer_value(json_object_get(r.rp, "messages")), 7);
        assert_int_equal(r.p.n_messages, 1);
        assert_true(r.p.messages[0].len > 8 && memcmp(r.p.messages[0].data, "count=7 ", 8) == 0);
        both_free(&r);
}

static void bidi(const char *id, bool lockstep, size_t n)
{
        struct pinlet_tgrpc_msg msgs[32];
        char bufs[32][32];
        struct mdb b = { 0 };
        struct both r;

        assert_true(n <= 32);
        for (size_t i = 0; i < n; i++) {
                int len = snprintf(bufs[i], sizeof(bufs[i]), "bidi-%zu", i);
                msgs[i] = (struct pinlet_tgrpc_msg){ (const uint8_t *)bufs[i], (size_t)len };
        }
        mdb_common(&b, id, "bidi-echo");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_BIDI,
                                            .method = "/made.up.v9.Service/Chat",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = msgs,
                                            .n_messages = n,
                                            .timeout_ms = 10000,
                                            .lockstep = lockstep };
        run_both(id, E.direct_rt, E.rt_log, &o, &r);
        assert_status(id, &r.p, GRPC_STATUS_OK);
        assert_int_equal(r.p.n_messages, n);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(r.p.messages[i].len, msgs[i].len);
                assert_memory_equal(r.p.messages[i].data, msgs[i].data, msgs[i].len);
        }
        both_free(&r);
}

static void test_bidi(void **state)
{
        /* lockstep: message i+1 is sent only after echo i came back, so a proxy that
         * waited for the half-close before forwarding would hit the deadline */
        bidi("bidi-lockstep", true, 6);
        bidi("bidi-burst", false, 32);
}

static void stall(const char *id, const char *method, int64_t timeout, int64_t cancel_after,
                  enum pinlet_tgrpc_kind kind, int expect)
{
        struct mdb b = { 0 };
        struct both r;

        mdb_common(&b, id, "stall");
        struct pinlet_tgrpc_call_opts o = { .kind = kind,
                                            .method = method,
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("stall", 5),
                                            .timeout_ms = timeout,
                                            .cancel_after_ms = cancel_after };
        /* bidi: the client never half-closes, so only the cancellation can end the call */
        if (kind == PINLET_TGRPC_BIDI)
                o.no_half_close = true;
        run_both(id, E.direct_rt, E.rt_log, &o, &r);
        assert_status(id, &r.d, expect);
        assert_status(id, &r.p, expect);
        /* the backend saw its side of the call end: cancelled, no status sent */
        assert_true(json_is_true(json_object_get(r.rp, "cancelled")));
        assert_true(json_is_null(json_object_get(r.rp, "status")));
        /* and it ended on time, not at some later cleanup */
        int64_t when = timeout > 0 ? timeout : cancel_after;
        if (r.p.elapsed_ms > when + 1500)
                fail_msg("%s: ended after %lld ms, expected about %lld", id,
                         (long long)r.p.elapsed_ms, (long long)when);
        both_free(&r);
}

static void test_deadline_exceeded(void **state)
{
        stall("deadline-unary", "/runtime.v1.RuntimeService/Version", 1000, 0, PINLET_TGRPC_UNARY,
              GRPC_STATUS_DEADLINE_EXCEEDED);
        stall("deadline-stream", "/made.up.v9.Service/Watch", 1000, 0, PINLET_TGRPC_SERVER_STREAM,
              GRPC_STATUS_DEADLINE_EXCEEDED);
}

static void test_client_cancel(void **state)
{
        stall("cancel-unary", "/runtime.v1.RuntimeService/Version", 0, 500, PINLET_TGRPC_UNARY,
              GRPC_STATUS_CANCELLED);
        stall("cancel-stream", "/runtime.v1.RuntimeService/GetContainerEvents", 0, 500,
              PINLET_TGRPC_SERVER_STREAM, GRPC_STATUS_CANCELLED);
        stall("cancel-client-stream", "/made.up.v9.Service/Upload", 0, 500,
              PINLET_TGRPC_CLIENT_STREAM, GRPC_STATUS_CANCELLED);
        stall("cancel-bidi", "/made.up.v9.Service/Chat", 0, 500, PINLET_TGRPC_BIDI,
              GRPC_STATUS_CANCELLED);
        stall("deadline-bidi", "/made.up.v9.Service/Chat", 1000, 0, PINLET_TGRPC_BIDI,
              GRPC_STATUS_DEADLINE_EXCEEDED);
}

static void test_server_speaks_first(void **state)
{
        struct mdb b = { 0 };
        struct both r;

        /* The backend sends initial metadata and 3 messages before it reads anything; the
         * client sends nothing and never half-closes. A proxy that waits for the client's
         * first message (or half-close) before forwarding the backend's would deliver
         * nothing here. */
        mdb_common(&b, "speak-first", "stream");
        /* endless (one message per 20 ms), so only the client's cancel ends the call: with a
         * finite count the fake would race the cancel with its own OK status */
        mdb_add(&b, "x-fake-count", "-1");
        mdb_add(&b, "x-fake-delay-ms", "20");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_BIDI,
                                            .method = "/made.up.v9.Service/Watch",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .n_messages = 0,
                                            .no_half_close = true,
                                            .timeout_ms = 10000,
                                            .cancel_after_messages = 3 };
        run_both("speak-first", E.direct_rt, E.rt_log, &o, &r);
        assert_status("speak-first", &r.p, GRPC_STATUS_CANCELLED);
        assert_int_equal(r.p.n_messages, 3);
        assert_memory_equal(r.p.messages[2].data, "stream-message-2", 16);
        /* the backend's initial metadata arrived too, before the end of the call */
        assert_non_null(pinlet_tgrpc_md_find(r.p.initial_md, r.p.n_initial_md, "echo-x-fake-id"));
        assert_true(json_is_true(json_object_get(r.rp, "cancelled")));
        assert_int_equal(json_integer_value(json_object_get(r.rp, "messages")), 0);
        both_free(&r);
}

static void test_cancel_after_messages(void **state)
{
        struct mdb b = { 0 };
        struct both r;

        /* an endless stream, cancelled by the client after 3 messages */
        mdb_common(&b, "cancel-after-3", "stream");
        mdb_add(&b, "x-fake-count", "-1");
        mdb_add(&b, "x-fake-delay-ms", "50");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_SERVER_STREAM,
                                            .method =
                                                    "/runtime.v1.RuntimeService/GetContainerEvents",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("", 0),
                                            .cancel_after_messages = 3 };
        memset(&r, 0, sizeof(r));
        run(E.direct_rt, &o, &r.d);
        r.rd = must_find(E.rt_log, "call", "cancel-after-3", 0);
        run(E.proxy, &o, &r.p);
        r.rp = must_find(E.rt_log, "call", "cancel-after-3", 1);
        assert_status("cancel-after-3", &r.p, GRPC_STATUS_CANCELLED);
        assert_int_equal(r.p.n_messages, 3);
        assert_true(json_is_true(json_object_get(r.rd, "cancelled")));
        assert_true(json_is_true(json_object_get(r.rp, "cancelled")));
        both_free(&r);
}

static void fail_case(const char *id, const char *method, const char *status, const char *msg,
                      bool with_initial, enum pinlet_tgrpc_kind kind)
{
        struct mdb b = { 0 };
        struct both r;

        mdb_common(&b, id, "fail");
        mdb_add(&b, "x-fake-status", status);
        mdb_add(&b, "x-fake-message-bin", msg); /* binary: the message may be UTF-8 */
        if (with_initial)
                mdb_add(&b, "x-fake-initial", "1");
        struct pinlet_tgrpc_call_opts o = { .kind = kind,
                                            .method = method,
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("req", 3),
                                            .timeout_ms = 10000 };
        run_both(id, E.direct_rt, E.rt_log, &o, &r);
        assert_status(id, &r.p, atoi(status));
        assert_string_equal(r.p.details, msg);
        assert_non_null(pinlet_tgrpc_md_find(r.p.trailing_md, r.p.n_trailing_md, "echo-trace-bin"));
        both_free(&r);
}

static void test_backend_failure(void **state)
{
        /* trailers-only (what grpc-go servers send on error) */
        fail_case("fail-trailers-only", "/runtime.v1.RuntimeService/Version", "9",
                  "container \"abc\" is not running: state=exited \xc3\xa9", false,
                  PINLET_TGRPC_UNARY);
        /* headers, then an error status */
        fail_case("fail-with-headers", "/runtime.v1.RuntimeService/ContainerStatus", "5",
                  "not found: abc", true, PINLET_TGRPC_UNARY);
        fail_case("fail-unknown", "/made.up.v9.Service/Anything", "12", "unimplemented here", false,
                  PINLET_TGRPC_UNARY);
        fail_case("fail-stream", "/runtime.v1.RuntimeService/GetContainerEvents", "14",
                  "going away", true, PINLET_TGRPC_SERVER_STREAM);
}

/* A runtime's own UNAVAILABLE that carries no metadata at all (a bare trailers-only
 * answer) is the runtime's answer, not pinlet's "backend unavailable": it passes
 * unchanged while pinlet is connected to the backend. */
static void test_backend_own_unavailable(void **state)
{
        const char *msg = "runtime busy: try again";
        struct mdb b = { 0 };
        struct both r;

        mdb_common(&b, "own-unavailable", "fail");
        mdb_add(&b, "x-fake-status", "14");
        mdb_add(&b, "x-fake-message", msg);
        mdb_add(&b, "x-fake-no-echo", "1");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                            .method = "/runtime.v1.RuntimeService/Version",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("req", 3),
                                            .timeout_ms = 10000 };
        run_both("own-unavailable", E.direct_rt, E.rt_log, &o, &r);
        assert_status("own-unavailable", &r.d, GRPC_STATUS_UNAVAILABLE);
        assert_int_equal(r.d.n_trailing_md, 0);
        assert_status("own-unavailable", &r.p, GRPC_STATUS_UNAVAILABLE);
        assert_string_equal(r.p.details, msg);
        both_free(&r);
}

static void test_authority_socket_path(void **state)
{
        /* Old grpc-go clients (crictl 1.26, older kubelets) send the socket path as
         * :authority. */
        struct pinlet_tgrpc_channel *direct = channel(E.rt_target, E.rt_sock);
        struct pinlet_tgrpc_channel *proxied =
                channel(selftest ? E.rt_target : E.pinlet_target, E.pinlet_sock);
        struct pinlet_tgrpc_channel *saved = E.proxy;
        struct mdb b = { 0 };
        struct both r;

        mdb_common(&b, "authority", "echo");
        struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                            .method = "/runtime.v1.RuntimeService/Version",
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("v", 1),
                                            .timeout_ms = 10000 };
        E.proxy = proxied;
        run_both("authority", direct, E.rt_log, &o, &r);
        E.proxy = saved;
        assert_status("authority", &r.p, GRPC_STATUS_OK);
        assert_string_equal(jstr(r.rd, "host"), E.rt_sock);
        both_free(&r);
        pinlet_tgrpc_channel_free(direct);
        pinlet_tgrpc_channel_free(proxied);
}

static void test_image_endpoint(void **state)
{
        static const char *const image_methods[] = {
                "/runtime.v1.ImageService/ListImages",
                "/runtime.v1.ImageService/ImageFsInfo",
                "/runtime.v1alpha2.ImageService/ListImages",
                "/runtime.v1alpha2.ImageService/ImageFsInfo",
        };
        static const char *const runtime_methods[] = {
                "/runtime.v1.RuntimeService/Version",
                "/runtime.v1alpha2.RuntimeService/ListPodSandbox", "/made.up.v9.Service/Anything",
                "/runtime.v1.RuntimeService/ImageFsInfo", /* runtime service: runtime */
        };

        if (selftest)
                return; /* routing needs pinlet */
        for (size_t i = 0; i < 4; i++) {
                char id[32];
                struct mdb b = { 0 };
                struct both r;

                snprintf(id, sizeof(id), "image-%zu", i);
                mdb_common(&b, id, "echo");
                struct pinlet_tgrpc_call_opts o = { .kind = PINLET_TGRPC_UNARY,
                                                    .method = image_methods[i],
                                                    .metadata = b.md,
                                                    .n_metadata = b.n,
                                                    .messages = ONE("", 0),
                                                    .timeout_ms = 10000 };
                run_both(id, E.direct_img, E.img_log, &o, &r);
                assert_status(id, &r.p, GRPC_STATUS_OK);
                both_free(&r);
                if (count_records(E.rt_log, "start", id) != 0)
                        fail_msg("%s reached the runtime endpoint", image_methods[i]);
        }
        for (size_t i = 0; i < 4; i++) {
                char id[32];
                struct pinlet_tgrpc_result r;
                struct mdb b = { 0 };

                snprintf(id, sizeof(id), "runtime-%zu", i);
                mdb_common(&b, id, "echo");
                assert_int_equal(pinlet_tgrpc_unary(E.proxy, runtime_methods[i], "", 0, b.md, b.n,
                                                    10000, &r),
                                 0);
                assert_status(id, &r, GRPC_STATUS_OK);
                pinlet_tgrpc_result_free(&r);
                json_decref(must_find(E.rt_log, "call", id, 0));
                if (count_records(E.img_log, "start", id) != 0)
                        fail_msg("%s reached the image endpoint", runtime_methods[i]);
        }
        /* The image fake never saw anything but ImageService calls. */
        FILE *f = fopen(E.img_log, "re");
        char *line = NULL;
        size_t cap = 0;
        assert_non_null(f);
        while (getline(&line, &cap, f) > 0) {
                json_t *o = json_loads(line, 0, NULL);
                assert_non_null(o);
                const char *m = jstr(o, "method");
                if (!strstr(m, ".ImageService/"))
                        fail_msg("image endpoint received %s", m);
                json_decref(o);
        }
        free(line);
        fclose(f);
}

struct job {
        char id[32];
        char req[32];
        struct pinlet_tgrpc_result r;
        int rc;
};

static void *worker(void *arg);

static void test_concurrent_calls(void **state)
{
        /* many calls at once on one channel: each must get its own answer */
        enum { N = 16 };
        pthread_t th[N];
        struct job jobs[N];

        for (int i = 0; i < N; i++) {
                snprintf(jobs[i].id, sizeof(jobs[i].id), "concurrent-%d", i);
                snprintf(jobs[i].req, sizeof(jobs[i].req), "request number %d", i);
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
        for (int i = 0; i < N; i++)
                pthread_join(th[i], NULL);
        for (int i = 0; i < N; i++) {
                assert_int_equal(jobs[i].rc, 0);
                assert_status(jobs[i].id, &jobs[i].r, GRPC_STATUS_OK);
                assert_int_equal(jobs[i].r.n_messages, 1);
                assert_int_equal(jobs[i].r.messages[0].len, strlen(jobs[i].req));
                assert_memory_equal(jobs[i].r.messages[0].data, jobs[i].req, strlen(jobs[i].req));
                const struct pinlet_tgrpc_md *m = pinlet_tgrpc_md_find(
                        jobs[i].r.trailing_md, jobs[i].r.n_trailing_md, "echo-x-fake-id");
                assert_non_null(m);
                assert_memory_equal(m->value, jobs[i].id, strlen(jobs[i].id));
                pinlet_tgrpc_result_free(&jobs[i].r);
        }
}

static void *worker(void *arg)
{
        struct job *job = arg;
        struct pinlet_tgrpc_md md[3] = {
                { "x-fake-id", (const uint8_t *)job->id, strlen(job->id) },
                { "x-fake-mode", (const uint8_t *)"echo", 4 },
                { "x-fake-delay-ms", (const uint8_t *)"100", 3 },
        };
        job->rc = pinlet_tgrpc_unary(E.proxy, "/runtime.v1.RuntimeService/Version", job->req,
                                     strlen(job->req), md, 3, 10000, &job->r);
        return NULL;
}

/* ---- backend down at start ------------------------------------------------------------ */

static int setup_bare(void **state)
{
        make_env();
        return 0;
}

/* A call through pinlet while the endpoint behind it is down: UNAVAILABLE, and the message
 * names the endpoint (the operator must see which socket is missing). */
static void assert_down(const char *method, enum pinlet_tgrpc_kind kind, const char *target)
{
        struct pinlet_tgrpc_result r;
        struct mdb b = { 0 };

        mdb_common(&b, "down", "echo");
        struct pinlet_tgrpc_call_opts o = { .kind = kind,
                                            .method = method,
                                            .metadata = b.md,
                                            .n_metadata = b.n,
                                            .messages = ONE("v", 1),
                                            .timeout_ms = 5000,
                                            .wait_limit_ms = WAIT_LIMIT_MS };
        assert_int_equal(pinlet_tgrpc_call(E.proxy, &o, &r), 0);
        fprintf(stderr, "%s with its endpoint down: %s \"%s\" after %lld ms\n", method,
                pinlet_tgrpc_status_name(r.status), r.details, (long long)r.elapsed_ms);
        assert_false(r.timed_out);
        assert_status(method, &r, GRPC_STATUS_UNAVAILABLE);
        if (!strstr(r.details, target))
                fail_msg("%s: status message \"%s\" does not name the backend endpoint %s", method,
                         r.details, target);
        pinlet_tgrpc_result_free(&r);
}

/* Polls method through pinlet until it succeeds (at most 10 s: gRPC's reconnect backoff
 * starts at 1 s); fails otherwise. The answer must be the backend's echo. */
static void wait_up(const char *method, const char *what)
{
        struct pinlet_tgrpc_result r;
        struct mdb b = { 0 };
        int64_t t0 = now_ms(), waited;

        mdb_common(&b, "up", "echo");
        for (;;) {
                assert_int_equal(pinlet_tgrpc_unary(E.proxy, method, "v", 1, b.md, b.n, 5000, &r),
                                 0);
                if (r.status == GRPC_STATUS_OK)
                        break;
                waited = now_ms() - t0;
                if (waited > 10000)
                        fail_msg("%s up for %lld ms, %s through pinlet still fails: %s \"%s\"",
                                 what, (long long)waited, method,
                                 pinlet_tgrpc_status_name(r.status), r.details);
                pinlet_tgrpc_result_free(&r);
                sleep_ms(100);
        }
        fprintf(stderr, "%s reachable through pinlet %lld ms after it started\n", what,
                (long long)(now_ms() - t0));
        assert_int_equal(r.n_messages, 1);
        assert_memory_equal(r.messages[0].data, "v", 1);
        assert_non_null(pinlet_tgrpc_md_find(r.trailing_md, r.n_trailing_md, "echo-x-fake-id"));
        pinlet_tgrpc_result_free(&r);
}

static void test_backend_down_then_up(void **state)
{
        assert_false(selftest);
        /* pinlet must start although neither endpoint is there */
        E.pinlet = start_pinlet(true);
        E.proxy = channel(E.pinlet_target, NULL);
        assert_down("/runtime.v1.RuntimeService/Version", PINLET_TGRPC_UNARY, E.rt_target);
        assert_down("/runtime.v1.RuntimeService/GetContainerEvents", PINLET_TGRPC_SERVER_STREAM,
                    E.rt_target);
        assert_down("/made.up.v9.Service/Anything", PINLET_TGRPC_UNARY, E.rt_target);
        assert_down("/runtime.v1.ImageService/ListImages", PINLET_TGRPC_UNARY, E.img_target);

        /* the runtime comes up: its calls succeed without restarting pinlet, image calls
         * still fail naming the image endpoint */
        E.rt = start_fake("backend", E.rt_sock, E.rt_log);
        wait_up("/runtime.v1.RuntimeService/Version", "runtime endpoint");
        wait_up("/made.up.v9.Service/Anything", "runtime endpoint");
        assert_down("/runtime.v1.ImageService/ListImages", PINLET_TGRPC_UNARY, E.img_target);

        /* then the image endpoint */
        E.img = start_fake("image", E.img_sock, E.img_log);
        wait_up("/runtime.v1.ImageService/ListImages", "image endpoint");
        assert_int_equal(count_records(E.img_log, "start", "up"), 1);
}

/* ---- backend killed mid-call ------------------------------------------------------------ */

struct bg_call {
        pthread_t th;
        struct pinlet_tgrpc_channel *ch;
        struct pinlet_tgrpc_call_opts o;
        struct mdb md;
        struct pinlet_tgrpc_msg msg;
        struct pinlet_tgrpc_result r;
        int rc;
        int64_t ended; /* monotonic ms */
};

static void *bg_main(void *arg)
{
        struct bg_call *c = arg;
        c->rc = pinlet_tgrpc_call(c->ch, &c->o, &c->r);
        c->ended = now_ms();
        return NULL;
}

static void bg_start(struct bg_call *c, struct pinlet_tgrpc_channel *ch, const char *id,
                     const char *method, enum pinlet_tgrpc_kind kind, const char *mode,
                     const char *count, const char *delay)
{
        memset(c, 0, sizeof(*c));
        c->ch = ch;
        mdb_add(&c->md, "x-fake-id", id);
        mdb_add(&c->md, "x-fake-mode", mode);
        if (count)
                mdb_add(&c->md, "x-fake-count", count);
        if (delay)
                mdb_add(&c->md, "x-fake-delay-ms", delay);
        c->msg = (struct pinlet_tgrpc_msg){ (const uint8_t *)id, strlen(id) };
        c->o = (struct pinlet_tgrpc_call_opts){ .kind = kind,
                                                .method = method,
                                                .metadata = c->md.md,
                                                .n_metadata = c->md.n,
                                                .messages = &c->msg,
                                                .n_messages = 1,
                                                .wait_limit_ms = WAIT_LIMIT_MS };
        assert_int_equal(pthread_create(&c->th, NULL, bg_main, c), 0);
}

static void bg_join(struct bg_call *c)
{
        pthread_join(c->th, NULL);
        assert_int_equal(c->rc, 0);
}

static void test_backend_killed(void **state)
{
        struct bg_call unary, stream;
        struct pinlet_tgrpc_result r;
        struct mdb b = { 0 };
        int st;
        int64_t t0;

        assert_false(selftest);
        E.rt = start_fake("backend", E.rt_sock, E.rt_log);
        E.pinlet = start_pinlet(false);
        E.proxy = channel(E.pinlet_target, NULL);

        bg_start(&unary, E.proxy, "killed-unary", "/runtime.v1.RuntimeService/Version",
                 PINLET_TGRPC_UNARY, "stall", NULL, NULL);
        bg_start(&stream, E.proxy, "killed-stream", "/runtime.v1.RuntimeService/GetContainerEvents",
                 PINLET_TGRPC_SERVER_STREAM, "stream", "-1", "100");
        json_decref(must_find(E.rt_log, "start", "killed-unary", 0));
        json_decref(must_find(E.rt_log, "start", "killed-stream", 0));
        sleep_ms(300);

        t0 = now_ms();
        kill(E.rt->pid, SIGKILL);
        st = reap(E.rt, 5000);
        assert_true(st != -1);
        bg_join(&unary);
        bg_join(&stream);
        fprintf(stderr,
                "backend killed: unary ended after %lld ms with %s \"%s\"; stream after "
                "%lld ms (%zu messages) with %s \"%s\"\n",
                (long long)(unary.ended - t0), pinlet_tgrpc_status_name(unary.r.status),
                unary.r.details, (long long)(stream.ended - t0), stream.r.n_messages,
                pinlet_tgrpc_status_name(stream.r.status), stream.r.details);
        /* both end promptly, with the status a direct client gets when its server dies */
        assert_false(unary.r.timed_out);
        assert_false(stream.r.timed_out);
        assert_status("killed-unary", &unary.r, GRPC_STATUS_UNAVAILABLE);
        assert_status("killed-stream", &stream.r, GRPC_STATUS_UNAVAILABLE);
        assert_true(stream.r.n_messages >= 1);
        assert_true(unary.ended - t0 < 3000);
        assert_true(stream.ended - t0 < 3000);
        pinlet_tgrpc_result_free(&unary.r);
        pinlet_tgrpc_result_free(&stream.r);

        /* the backend comes back: pinlet reconnects on its own */
        E.rt = start_fake("backend", E.rt_sock, E.rt_log);
        t0 = now_ms();
        mdb_common(&b, "after-restart", "echo");
        for (;;) {
                assert_int_equal(pinlet_tgrpc_unary(E.proxy, "/runtime.v1.RuntimeService/Version",
                                                    "v", 1, b.md, b.n, 5000, &r),
                                 0);
                if (r.status == GRPC_STATUS_OK)
                        break;
                if (now_ms() - t0 > 10000)
                        fail_msg("backend restarted 10 s ago, calls through pinlet still fail: "
                                 "%s \"%s\"",
                                 pinlet_tgrpc_status_name(r.status), r.details);
                pinlet_tgrpc_result_free(&r);
                sleep_ms(100);
        }
        pinlet_tgrpc_result_free(&r);
}

/* ---- SIGTERM -------------------------------------------------------------------------- */

static void test_sigterm(void **state)
{
        struct bg_call quick, slow, stream;
        struct pinlet_tgrpc_result r;
        struct pinlet_tgrpc_channel *late;
        struct mdb b = { 0 };
        int64_t t0;
        int st;

        assert_false(selftest);
        E.rt = start_fake("backend", E.rt_sock, E.rt_log);
        E.pinlet = start_pinlet(false);
        E.proxy = channel(E.pinlet_target, NULL);

        /* grace is 3 s (config): the 1.5 s unary finishes, the 8 s one is cut at ~3 s */
        bg_start(&quick, E.proxy, "term-quick", "/runtime.v1.RuntimeService/Version",
                 PINLET_TGRPC_UNARY, "echo", NULL, "1500");
        bg_start(&slow, E.proxy, "term-slow", "/runtime.v1.RuntimeService/ListContainers",
                 PINLET_TGRPC_UNARY, "echo", NULL, "8000");
        bg_start(&stream, E.proxy, "term-stream", "/runtime.v1.RuntimeService/GetContainerEvents",
                 PINLET_TGRPC_SERVER_STREAM, "stream", "-1", "100");
        json_decref(must_find(E.rt_log, "start", "term-quick", 0));
        json_decref(must_find(E.rt_log, "start", "term-slow", 0));
        json_decref(must_find(E.rt_log, "start", "term-stream", 0));

        t0 = now_ms();
        kill(E.pinlet->pid, SIGTERM);
        sleep_ms(300);

        /* no new connections once shutting down */
        late = channel(E.pinlet_target, NULL);
        mdb_common(&b, "term-late", "echo");
        assert_int_equal(pinlet_tgrpc_unary(late, "/runtime.v1.RuntimeService/Version", "v", 1,
                                            b.md, b.n, 2000, &r),
                         0);
        if (r.status == GRPC_STATUS_OK)
                fail_msg("a new call 300 ms after SIGTERM succeeded");
        pinlet_tgrpc_result_free(&r);
        pinlet_tgrpc_channel_free(late);

        bg_join(&stream);
        bg_join(&quick);
        bg_join(&slow);
        fprintf(stderr,
                "SIGTERM: stream ended after %lld ms with %s \"%s\"; quick unary %lld ms "
                "%s; slow unary %lld ms %s \"%s\"\n",
                (long long)(stream.ended - t0), pinlet_tgrpc_status_name(stream.r.status),
                stream.r.details, (long long)(quick.ended - t0),
                pinlet_tgrpc_status_name(quick.r.status), (long long)(slow.ended - t0),
                pinlet_tgrpc_status_name(slow.r.status), slow.r.details);

        /* streams are cancelled at once ... */
        assert_false(stream.r.timed_out);
        if (stream.r.status == GRPC_STATUS_OK)
                fail_msg("stream ended OK on SIGTERM, expected it to be cancelled");
        if (stream.ended - t0 > 1000)
                fail_msg("stream ended %lld ms after SIGTERM, expected < 1000",
                         (long long)(stream.ended - t0));
        /* ... and the cancellation reaches the backend */
        json_t *rec = must_find(E.rt_log, "call", "term-stream", 0);
        assert_true(json_is_true(json_object_get(rec, "cancelled")));
        json_decref(rec);

        /* an in-flight unary call within the grace period completes normally */
        assert_status("term-quick", &quick.r, GRPC_STATUS_OK);
        assert_int_equal(quick.r.n_messages, 1);
        assert_memory_equal(quick.r.messages[0].data, "term-quick", 10);

        /* one that outlives the grace period is ended at about the grace period */
        assert_false(slow.r.timed_out);
        if (slow.r.status == GRPC_STATUS_OK)
                fail_msg("the 8 s call succeeded although the grace period is 3 s");
        if (slow.ended - t0 < 2500 || slow.ended - t0 > 5000)
                fail_msg("the 8 s call ended %lld ms after SIGTERM, expected about 3000",
                         (long long)(slow.ended - t0));

        /* and the backend's side of it is cancelled too, not left running */
        rec = must_find(E.rt_log, "call", "term-slow", 0);
        assert_true(json_is_true(json_object_get(rec, "cancelled")));
        assert_true(json_is_null(json_object_get(rec, "status")));
        json_decref(rec);

        /* pinlet exits 0 and removes its socket */
        st = reap(E.pinlet, 5000);
        if (st == -1)
                fail_msg("pinlet still running %lld ms after SIGTERM", (long long)(now_ms() - t0));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("pinlet exit status 0x%x after SIGTERM, expected exit 0", st);
        fprintf(stderr, "pinlet exited %lld ms after SIGTERM\n", (long long)(now_ms() - t0));
        if (access(E.pinlet_sock, F_OK) == 0)
                fail_msg("pinlet left its socket %s behind", E.pinlet_sock);
        pinlet_tgrpc_result_free(&quick.r);
        pinlet_tgrpc_result_free(&slow.r);
        pinlet_tgrpc_result_free(&stream.r);
}

/* ---- main -------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
        cleanup_all();
        signal(sig, SIG_DFL);
        raise(sig);
}

int main(int argc, char **argv)
{
        const struct CMUnitTest passthrough[] = {
                cmocka_unit_test(test_unary_known_method),
                cmocka_unit_test(test_unary_unknown_method),
                cmocka_unit_test(test_unary_v1alpha2),
                cmocka_unit_test(test_unary_no_deadline),
                cmocka_unit_test(test_unary_empty_message),
                cmocka_unit_test(test_large_messages),
                cmocka_unit_test(test_message_limit),
                cmocka_unit_test(test_server_stream),
                cmocka_unit_test(test_client_stream),
                cmocka_unit_test(test_bidi),
                cmocka_unit_test(test_deadline_exceeded),
                cmocka_unit_test(test_client_cancel),
                cmocka_unit_test(test_cancel_after_messages),
                cmocka_unit_test(test_server_speaks_first),
                cmocka_unit_test(test_backend_failure),
                cmocka_unit_test(test_backend_own_unavailable),
                cmocka_unit_test(test_authority_socket_path),
                cmocka_unit_test(test_image_endpoint),
                cmocka_unit_test(test_concurrent_calls),
        };
        const struct CMUnitTest backend_down[] = {
                cmocka_unit_test(test_backend_down_then_up),
        };
        const struct CMUnitTest backend_killed[] = {
                cmocka_unit_test(test_backend_killed),
        };
        const struct CMUnitTest sigterm[] = {
                cmocka_unit_test(test_sigterm),
        };
        int rc;

        if (argc != 4) {
                fprintf(stderr, "usage: %s GROUP PINLET FAKE_BACKEND\n", argv[0]);
                return 2;
        }
        pinlet_bin = argv[2];
        fake_bin = argv[3];
        selftest = getenv("PINLET_FAKE_SELFTEST") != NULL;
        atexit(cleanup_all);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);

        if (strcmp(argv[1], "passthrough") == 0)
                rc = cmocka_run_group_tests_name("proxy_passthrough", passthrough,
                                                 setup_passthrough, teardown_env);
        else if (strcmp(argv[1], "backend_down") == 0)
                rc = cmocka_run_group_tests_name("proxy_backend_down", backend_down, setup_bare,
                                                 teardown_env);
        else if (strcmp(argv[1], "backend_killed") == 0)
                rc = cmocka_run_group_tests_name("proxy_backend_killed", backend_killed, setup_bare,
                                                 teardown_env);
        else if (strcmp(argv[1], "sigterm") == 0)
                rc = cmocka_run_group_tests_name("proxy_sigterm", sigterm, setup_bare,
                                                 teardown_env);
        else {
                fprintf(stderr, "unknown group %s\n", argv[1]);
                return 2;
        }
        if (rc != 0 || teardown_failed)
                dump_logs();
        return rc != 0 || teardown_failed ? 1 : 0;
}
