/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays a libFuzzer corpus through a harness without libFuzzer, so that a gcc build (and
 * the sanitizer build) runs every committed input under ctest. Arguments are files or
 * directories; each file is one input. Fails when no input was found, so an empty or
 * misplaced corpus cannot pass silently.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
        FILE *f = fopen(path, "rb");
        uint8_t *buf = NULL;
        long n;

        if (!f) {
                perror(path);
                return -1;
        }
        if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
                fclose(f);
                return -1;
        }
        buf = malloc(n ? (size_t)n : 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
        return 0;
}

static int replay(const char *path, unsigned *count)
{
        struct stat st;
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (stat(path, &st) < 0) {
                perror(path);
                return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
                (*count)++;
                return replay_file(path);
        }
        d = opendir(path);
        if (!d)
                return -1;
        while ((de = readdir(d))) {
                char *p;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&p, "%s/%s", path, de->d_name) < 0) {
                        r = -1;
                        break;
                }
                if (replay(p, count) < 0)
                        r = -1;
                free(p);
        }
        closedir(d);
        return r;
}

int main(int argc, char **argv)
{
        unsigned count = 0;

        for (int i = 1; i < argc; i++)
                if (replay(argv[i], &count) < 0)
                        return 1;
        if (count == 0) {
                fprintf(stderr, "no corpus input found\n");
                return 1;
        }
        printf("replayed %u inputs\n", count);
        return 0;
}
