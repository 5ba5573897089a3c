/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pin store on a full disk (files/run.sh mounts a small tmpfs and passes its path):
 *   - a record that does not fit fails with ENOSPC and leaves the old pin, in memory and
 *     after a reopen;
 *   - forget() still succeeds (it writes into the store's reserve), and the pin stays
 *     forgotten after a reopen, read-only and read-write, on the still full disk;
 *   - once space is freed, records work again.
 * Usage: pinlet_it_full_disk DIR (DIR: an empty file system of a few hundred KiB).
 * Exit status 0 when every check holds; the first failed check is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pins/pins.h"

#define D1    "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3    "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define NGINX "docker.io/library/nginx:1.25"
#define REDIS "docker.io/library/redis:7"
#define APP   "registry.example:5000/team/app:v1"

#define CHECK(cond, ...)                                                              \
        do {                                                                          \
                if (!(cond)) {                                                        \
                        fprintf(stderr, "full_disk: line %d: %s: ", __LINE__, #cond); \
                        fprintf(stderr, __VA_ARGS__);                                 \
                        fputc('\n', stderr);                                          \
                        exit(1);                                                      \
                }                                                                     \
        } while (0)

#define N_MANY 40

static const char *many(int i)
{
        static char buf[64];

        snprintf(buf, sizeof(buf), "docker.io/team/service-%02d:v1", i);
        return buf;
}

static const char *message(struct pinlet_error *err)
{
        return err ? err->message : "(no message)";
}

/* "" when ref has no pin */
static const char *lookup(struct pinlet_pins *p, const char *ref)
{
        static char buf[256];
        char *d = NULL;
        int r = pinlet_pins_lookup(p, ref, &d);

        CHECK(r == 0 || r == -ENOENT, "lookup %s: %s", ref, strerror(-r));
        snprintf(buf, sizeof(buf), "%s", d ? d : "");
        free(d);
        return buf;
}

static struct pinlet_pins *open_store(const char *state, int read_only)
{
        _cleanup_error_ struct pinlet_error *err = NULL;
        struct pinlet_pins *p = NULL;
        int r = read_only ? pinlet_pins_open_readonly(state, 0, &p, &err)
                          : pinlet_pins_open(state, 0, &p, &err);

        CHECK(r == 0, "open %s (%s): %s", state, read_only ? "read-only" : "read-write",
              message(err));
        return p;
}

/* Writes zeros to path until the file system says ENOSPC. */
static void fill(const char *path)
{
        static char block[4096];
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ssize_t k;

        CHECK(fd >= 0, "%s: %s", path, strerror(errno));
        do
                k = write(fd, block, sizeof(block));
        while (k > 0);
        CHECK(k < 0 && errno == ENOSPC, "filling %s ended with %s", path, strerror(errno));
        /* the last partial block, byte by byte */
        while (write(fd, block, 1) == 1)
                ;
        close(fd);
}

int main(int argc, char **argv)
{
        _cleanup_free_ char *state = NULL, *filler = NULL;
        struct pinlet_error *err = NULL;
        struct pinlet_pins *p;
        char *prev = NULL, last[80] = D1;
        int r;

        CHECK(argc == 2, "usage: %s DIR", argv[0]);
        CHECK(asprintf(&state, "%s/state", argv[1]) > 0, "out of memory");
        CHECK(asprintf(&filler, "%s/filler", argv[1]) > 0, "out of memory");

        p = open_store(state, 0);
        r = pinlet_pins_record(p, NGINX, D1, "prod/web-0/uid-0", NULL, &err);
        CHECK(r == 0, "record: %s", message(err));
        r = pinlet_pins_record(p, REDIS, D1, NULL, NULL, &err);
        CHECK(r == 0, "record: %s", message(err));

        /* pins to forget later: more deletion lines than fit in the slack of the file's
         * last page, so that only the reserve can hold them */
        for (int i = 0; i < N_MANY; i++) {
                r = pinlet_pins_record(p, many(i), D1, NULL, NULL, &err);
                CHECK(r == 0, "record: %s", message(err));
        }

        fill(filler);

        /* The tag keeps moving until a new pin cannot be written: lines may still fit in
         * the last page past the reserve, so try until the file system says no (a few
         * dozen records). The one that fails leaves the last recorded pin. */
        for (int i = 0;; i++) {
                char digest[80];

                CHECK(i < 10000, "records never failed on a full disk");
                snprintf(digest, sizeof(digest), "sha256:%064d", i + 10);
                r = pinlet_pins_record(p, NGINX, digest, "prod/web-1/uid-1", &prev, &err);
                if (r == 0) {
                        CHECK(prev && strcmp(prev, last) == 0, "previous %s, want %s",
                              prev ? prev : "(none)", last);
                        free(prev);
                        prev = NULL;
                        snprintf(last, sizeof(last), "%s", digest);
                        continue;
                }
                CHECK(r == -ENOSPC, "record on a full disk returned %d (%s)", r, message(err));
                CHECK(prev == NULL, "previous digest written on failure");
                fprintf(stderr, "full_disk: record %d refused as expected: %s\n", i, message(err));
                break;
        }
        pinlet_error_free(err);
        err = NULL;
        CHECK(strcmp(lookup(p, NGINX), last) == 0, "after a failed record: %s, want %s",
              lookup(p, NGINX), last);
        r = pinlet_pins_record(p, APP, D3, NULL, NULL, &err);
        CHECK(r == -ENOSPC, "new pin on a full disk returned %d", r);
        pinlet_error_free(err);
        err = NULL;
        CHECK(*lookup(p, APP) == '\0', "a pin that was not written is in memory");

        /* what the interceptor then does: forget the tag, which must work on a full disk */
        r = pinlet_pins_forget(p, NGINX, &err);
        CHECK(r == 1, "forget on a full disk returned %d (%s)", r, message(err));
        CHECK(*lookup(p, NGINX) == '\0', "still pinned after forget");
        for (int i = 0; i < N_MANY; i++) {
                r = pinlet_pins_forget(p, many(i), &err);
                CHECK(r == 1, "forget %d on a full disk returned %d (%s)", i, r, message(err));
        }
        pinlet_pins_close(p);

        /* a restart on the still full disk: the forget held, the rest is there */
        p = open_store(state, 1);
        CHECK(*lookup(p, NGINX) == '\0', "read-only reopen: %s pinned again", lookup(p, NGINX));
        CHECK(strcmp(lookup(p, REDIS), D1) == 0, "read-only reopen lost %s", REDIS);
        CHECK(*lookup(p, APP) == '\0', "read-only reopen: %s appeared", APP);
        for (int i = 0; i < N_MANY; i++)
                CHECK(*lookup(p, many(i)) == '\0', "read-only reopen: %s came back", many(i));
        pinlet_pins_close(p);
        p = open_store(state, 0);
        CHECK(*lookup(p, NGINX) == '\0', "reopen: %s pinned again", lookup(p, NGINX));
        CHECK(strcmp(lookup(p, REDIS), D1) == 0, "reopen lost %s", REDIS);
        /* and it can still forget there */
        r = pinlet_pins_forget(p, REDIS, &err);
        CHECK(r == 1, "second forget on a full disk returned %d (%s)", r, message(err));
        pinlet_pins_close(p);

        /* space again: records work */
        CHECK(unlink(filler) == 0, "unlink %s: %s", filler, strerror(errno));
        p = open_store(state, 0);
        CHECK(*lookup(p, REDIS) == '\0', "forgotten %s came back", REDIS);
        r = pinlet_pins_record(p, NGINX, D3, NULL, NULL, &err);
        CHECK(r == 0, "record after freeing space: %s", message(err));
        pinlet_pins_close(p);
        p = open_store(state, 0);
        CHECK(strcmp(lookup(p, NGINX), D3) == 0, "record after freeing space lost");
        CHECK(pinlet_pins_load_report(p)->skipped == 0, "damaged lines in the store");
        pinlet_pins_close(p);
        fprintf(stderr, "full_disk: ok\n");
        return 0;
}
