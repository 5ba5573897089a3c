/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reference parsing: a table of valid references (every field, the normalized and the
 * familiar form, and that both forms parse back to the same reference), a table of
 * invalid ones (the error text), and the boundaries that need generated strings.
 * Expected values follow distribution/reference ParseNormalizedNamed + TagNameOnly +
 * FamiliarString, except where ref.c documents pinlet as stricter.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref/ref.h"

#define HEX64  "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7"
#define HEX32  "0123456789abcdef0123456789abcdef"
#define HEX96  HEX64 HEX32
#define HEX128 HEX64 HEX64
#define UHEX64 "B5B2B2C507A0944348E0303114D8D93AAAA081732B86451D9BCE1F432A537BC7"
#define D256   "sha256:" HEX64
#define D384   "sha384:" HEX96
#define D512   "sha512:" HEX128

struct valid_case {
        const char *in;
        const char *domain, *path, *tag, *digest;
        bool defaulted;
        const char *string;   /* pinlet_ref_string */
        const char *familiar; /* pinlet_ref_familiar */
};

/* Docker Hub official image: docker.io/library/<name> */
#define HUB(in, name, tag, dgst, dflt, str, fam)                            \
        {                                                                   \
                in, "docker.io", "library/" name, tag, dgst, dflt, str, fam \
        }

static const struct valid_case valid[] = {
        /* Docker Hub: docker.io default, library/ prefix, index.docker.io folded */
        HUB("nginx", "nginx", "latest", NULL, true, "docker.io/library/nginx:latest",
            "nginx:latest"),
        HUB("nginx:1.25", "nginx", "1.25", NULL, false, "docker.io/library/nginx:1.25",
            "nginx:1.25"),
        HUB("nginx:latest", "nginx", "latest", NULL, false, "docker.io/library/nginx:latest",
            "nginx:latest"),
        HUB("library/nginx", "nginx", "latest", NULL, true, "docker.io/library/nginx:latest",
            "nginx:latest"),
        HUB("docker.io/nginx", "nginx", "latest", NULL, true, "docker.io/library/nginx:latest",
            "nginx:latest"),
        HUB("docker.io/library/nginx", "nginx", "latest", NULL, true,
            "docker.io/library/nginx:latest", "nginx:latest"),
        HUB("docker.io/library/nginx:1.25", "nginx", "1.25", NULL, false,
            "docker.io/library/nginx:1.25", "nginx:1.25"),
        HUB("index.docker.io/nginx", "nginx", "latest", NULL, true,
            "docker.io/library/nginx:latest", "nginx:latest"),
        HUB("index.docker.io/library/nginx:1.0", "nginx", "1.0", NULL, false,
            "docker.io/library/nginx:1.0", "nginx:1.0"),
        { "index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", NULL, true,
          "docker.io/foo/bar:latest", "foo/bar:latest" },
        { "index.docker.io/a/b/c", "docker.io", "a/b/c", "latest", NULL, true,
          "docker.io/a/b/c:latest", "a/b/c:latest" },
        { "foo/bar", "docker.io", "foo/bar", "latest", NULL, true, "docker.io/foo/bar:latest",
          "foo/bar:latest" },
        { "foo/bar/baz:v2", "docker.io", "foo/bar/baz", "v2", NULL, false,
          "docker.io/foo/bar/baz:v2", "foo/bar/baz:v2" },
        { "1/2/3", "docker.io", "1/2/3", "latest", NULL, true, "docker.io/1/2/3:latest",
          "1/2/3:latest" },
        { "h/x", "docker.io", "h/x", "latest", NULL, true, "docker.io/h/x:latest", "h/x:latest" },
        HUB("docker.io/a", "a", "latest", NULL, true, "docker.io/library/a:latest", "a:latest"),
        HUB("a", "a", "latest", NULL, true, "docker.io/library/a:latest", "a:latest"),
        HUB("0", "0", "latest", NULL, true, "docker.io/library/0:latest", "0:latest"),
        HUB("a:b", "a", "b", NULL, false, "docker.io/library/a:b", "a:b"),
        HUB("busybox:1.36.1-musl", "busybox", "1.36.1-musl", NULL, false,
            "docker.io/library/busybox:1.36.1-musl", "busybox:1.36.1-musl"),
        HUB("alpine:3", "alpine", "3", NULL, false, "docker.io/library/alpine:3", "alpine:3"),
        /* registry-1.docker.io and other spellings are not Docker Hub's canonical name */
        { "registry-1.docker.io/library/nginx", "registry-1.docker.io", "library/nginx", "latest",
          NULL, true, "registry-1.docker.io/library/nginx:latest",
          "registry-1.docker.io/library/nginx:latest" },
        { "registry-1.docker.io/nginx:1", "registry-1.docker.io", "nginx", "1", NULL, false,
          "registry-1.docker.io/nginx:1", "registry-1.docker.io/nginx:1" },
        { "Docker.io/nginx", "Docker.io", "nginx", "latest", NULL, true, "Docker.io/nginx:latest",
          "Docker.io/nginx:latest" },
        { "INDEX.docker.io/a", "INDEX.docker.io", "a", "latest", NULL, true,
          "INDEX.docker.io/a:latest", "INDEX.docker.io/a:latest" },
        { "index.docker.io:443/a", "index.docker.io:443", "a", "latest", NULL, true,
          "index.docker.io:443/a:latest", "index.docker.io:443/a:latest" },
        { "docker.io:443/a", "docker.io:443", "a", "latest", NULL, true, "docker.io:443/a:latest",
          "docker.io:443/a:latest" },
        /* Docker Hub paths whose short form would read as another registry keep docker.io/ */
        { "docker.io/foo.bar/baz", "docker.io", "foo.bar/baz", "latest", NULL, true,
          "docker.io/foo.bar/baz:latest", "docker.io/foo.bar/baz:latest" },
        { "docker.io/localhost/app", "docker.io", "localhost/app", "latest", NULL, true,
          "docker.io/localhost/app:latest", "docker.io/localhost/app:latest" },
        { "docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", NULL, true,
          "docker.io/library/foo/bar:latest", "library/foo/bar:latest" },
        HUB("docker.io/library/foo.bar", "foo.bar", "latest", NULL, true,
            "docker.io/library/foo.bar:latest", "foo.bar:latest"),
        /* localhost: a domain only in front of a '/' */
        { "localhost/app", "localhost", "app", "latest", NULL, true, "localhost/app:latest",
          "localhost/app:latest" },
        { "localhost:5000/app:v1", "localhost:5000", "app", "v1", NULL, false,
          "localhost:5000/app:v1", "localhost:5000/app:v1" },
        { "localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", NULL, true,
          "localhost:5000/a/b/c:latest", "localhost:5000/a/b/c:latest" },
        { "localhost/library/app", "localhost", "library/app", "latest", NULL, true,
          "localhost/library/app:latest", "localhost/library/app:latest" },
        { "localhost/a:b@" D256, "localhost", "a", "b", D256, false, "localhost/a:b@" D256,
          "localhost/a:b@" D256 },
        HUB("localhost", "localhost", "latest", NULL, true, "docker.io/library/localhost:latest",
            "localhost:latest"),
        HUB("localhost:5000", "localhost", "5000", NULL, false, "docker.io/library/localhost:5000",
            "localhost:5000"),
        /* host names, with and without port, uppercase allowed in domains */
        HUB("example.com", "example.com", "latest", NULL, true,
            "docker.io/library/example.com:latest", "example.com:latest"),
        HUB("example.com:5000", "example.com", "5000", NULL, false,
            "docker.io/library/example.com:5000", "example.com:5000"),
        { "example.com/app", "example.com", "app", "latest", NULL, true, "example.com/app:latest",
          "example.com/app:latest" },
        { "example.com:443/app:1", "example.com:443", "app", "1", NULL, false,
          "example.com:443/app:1", "example.com:443/app:1" },
        { "EXAMPLE.COM/app", "EXAMPLE.COM", "app", "latest", NULL, true, "EXAMPLE.COM/app:latest",
          "EXAMPLE.COM/app:latest" },
        { "Example.Com:5000/team/app:V1.0", "Example.Com:5000", "team/app", "V1.0", NULL, false,
          "Example.Com:5000/team/app:V1.0", "Example.Com:5000/team/app:V1.0" },
        { "Foo/bar", "Foo", "bar", "latest", NULL, true, "Foo/bar:latest", "Foo/bar:latest" },
        { "FOO/bar/baz:v1", "FOO", "bar/baz", "v1", NULL, false, "FOO/bar/baz:v1",
          "FOO/bar/baz:v1" },
        { "registry:5000/app", "registry:5000", "app", "latest", NULL, true,
          "registry:5000/app:latest", "registry:5000/app:latest" },
        { "test-com:8080/foo", "test-com:8080", "foo", "latest", NULL, true,
          "test-com:8080/foo:latest", "test-com:8080/foo:latest" },
        { "my-registry:5000/x", "my-registry:5000", "x", "latest", NULL, true,
          "my-registry:5000/x:latest", "my-registry:5000/x:latest" },
        { "a.b/c", "a.b", "c", "latest", NULL, true, "a.b/c:latest", "a.b/c:latest" },
        { "host-1.example.com/x/y", "host-1.example.com", "x/y", "latest", NULL, true,
          "host-1.example.com/x/y:latest", "host-1.example.com/x/y:latest" },
        { "a--b.c/x", "a--b.c", "x", "latest", NULL, true, "a--b.c/x:latest", "a--b.c/x:latest" },
        { "xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", NULL, false,
          "xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com" },
        { "xn--7o8h.com/myimage:xn--7o8h.com@" D512, "xn--7o8h.com", "myimage", "xn--7o8h.com",
          D512, false, "xn--7o8h.com/myimage:xn--7o8h.com@" D512,
          "xn--7o8h.com/myimage:xn--7o8h.com@" D512 },
        { "sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
          "some-long-tag", NULL, false, "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
          "sub-dom1.foo.com/bar/baz/quux:some-long-tag" },
        { "b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io",
          "test.example.com/my-app", "test.example.com", NULL, false,
          "b.gcr.io/test.example.com/my-app:test.example.com",
          "b.gcr.io/test.example.com/my-app:test.example.com" },
        { "0.0.0.0:0/x", "0.0.0.0:0", "x", "latest", NULL, true, "0.0.0.0:0/x:latest",
          "0.0.0.0:0/x:latest" },
        /* port-number := [0-9]+ has no numeric bound in the grammar */
        { "example.com:99999999/x", "example.com:99999999", "x", "latest", NULL, true,
          "example.com:99999999/x:latest", "example.com:99999999/x:latest" },
        /* IPv4 */
        { "127.0.0.1:5000/app:v1", "127.0.0.1:5000", "app", "v1", NULL, false,
          "127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v1" },
        { "127.0.0.1/app", "127.0.0.1", "app", "latest", NULL, true, "127.0.0.1/app:latest",
          "127.0.0.1/app:latest" },
        { "192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", NULL, false,
          "192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050" },
        { "1.2.3.4/x", "1.2.3.4", "x", "latest", NULL, true, "1.2.3.4/x:latest",
          "1.2.3.4/x:latest" },
        HUB("192.168.1.1", "192.168.1.1", "latest", NULL, true,
            "docker.io/library/192.168.1.1:latest", "192.168.1.1:latest"),
        HUB("192.168.1.1:5000", "192.168.1.1", "5000", NULL, false,
            "docker.io/library/192.168.1.1:5000", "192.168.1.1:5000"),
        /* IPv6 in brackets, optional port */
        { "[::1]:5000/app", "[::1]:5000", "app", "latest", NULL, true, "[::1]:5000/app:latest",
          "[::1]:5000/app:latest" },
        { "[::1]/app", "[::1]", "app", "latest", NULL, true, "[::1]/app:latest",
          "[::1]/app:latest" },
        { "[2001:db8::1]/x", "[2001:db8::1]", "x", "latest", NULL, true, "[2001:db8::1]/x:latest",
          "[2001:db8::1]/x:latest" },
        { "[2001:DB8::1]/x", "[2001:DB8::1]", "x", "latest", NULL, true, "[2001:DB8::1]/x:latest",
          "[2001:DB8::1]/x:latest" },
        { "[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", NULL, false,
          "[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo:tag" },
        { "[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "latest", NULL, true,
          "[2001:db8::]:5000/repo:latest", "[2001:db8::]:5000/repo:latest" },
        { "[2001:db8::1]:5000/repo:tag@" D256, "[2001:db8::1]:5000", "repo", "tag", D256, false,
          "[2001:db8::1]:5000/repo:tag@" D256, "[2001:db8::1]:5000/repo:tag@" D256 },
        { "[::1]:5000/app:v1@" D256, "[::1]:5000", "app", "v1", D256, false,
          "[::1]:5000/app:v1@" D256, "[::1]:5000/app:v1@" D256 },
        /* digests: sha256, sha384, sha512; tag and digest together */
        HUB("nginx@" D256, "nginx", NULL, D256, false, "docker.io/library/nginx@" D256,
            "nginx@" D256),
        HUB("nginx:1.25@" D256, "nginx", "1.25", D256, false, "docker.io/library/nginx:1.25@" D256,
            "nginx:1.25@" D256),
        HUB("nginx@" D384, "nginx", NULL, D384, false, "docker.io/library/nginx@" D384,
            "nginx@" D384),
        HUB("nginx@" D512, "nginx", NULL, D512, false, "docker.io/library/nginx@" D512,
            "nginx@" D512),
        HUB("docker.io/library/nginx:latest@" D256, "nginx", "latest", D256, false,
            "docker.io/library/nginx:latest@" D256, "nginx:latest@" D256),
        { "foo/bar:v1@" D512, "docker.io", "foo/bar", "v1", D512, false,
          "docker.io/foo/bar:v1@" D512, "foo/bar:v1@" D512 },
        { "gcr.io/project/app@" D256, "gcr.io", "project/app", NULL, D256, false,
          "gcr.io/project/app@" D256, "gcr.io/project/app@" D256 },
        { "quay.io/org/app:tag@" D256, "quay.io", "org/app", "tag", D256, false,
          "quay.io/org/app:tag@" D256, "quay.io/org/app:tag@" D256 },
        { "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
          "test:5000", "repo", NULL,
          "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", false,
          "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
          "test:5000/"
          "repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff" },
        /* path component separators: one '.', one or two '_', any number of '-' */
        HUB("a__b", "a__b", "latest", NULL, true, "docker.io/library/a__b:latest", "a__b:latest"),
        HUB("a_b", "a_b", "latest", NULL, true, "docker.io/library/a_b:latest", "a_b:latest"),
        HUB("a.b", "a.b", "latest", NULL, true, "docker.io/library/a.b:latest", "a.b:latest"),
        HUB("a-b", "a-b", "latest", NULL, true, "docker.io/library/a-b:latest", "a-b:latest"),
        HUB("a---b", "a---b", "latest", NULL, true, "docker.io/library/a---b:latest",
            "a---b:latest"),
        HUB("a-b-c.d_e__f", "a-b-c.d_e__f", "latest", NULL, true,
            "docker.io/library/a-b-c.d_e__f:latest", "a-b-c.d_e__f:latest"),
        HUB("a.b.c_d", "a.b.c_d", "latest", NULL, true, "docker.io/library/a.b.c_d:latest",
            "a.b.c_d:latest"),
        { "foo/a__b/c--d", "docker.io", "foo/a__b/c--d", "latest", NULL, true,
          "docker.io/foo/a__b/c--d:latest", "foo/a__b/c--d:latest" },
        { "test_com/foo", "docker.io", "test_com/foo", "latest", NULL, true,
          "docker.io/test_com/foo:latest", "test_com/foo:latest" },
        HUB("foo_bar.com:8080", "foo_bar.com", "8080", NULL, false,
            "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"),
        { "foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", NULL, false,
          "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080" },
        /* tags: [\w][\w.-]{0,127}, case kept */
        HUB("nginx:Latest", "nginx", "Latest", NULL, false, "docker.io/library/nginx:Latest",
            "nginx:Latest"),
        HUB("nginx:_", "nginx", "_", NULL, false, "docker.io/library/nginx:_", "nginx:_"),
        HUB("nginx:v", "nginx", "v", NULL, false, "docker.io/library/nginx:v", "nginx:v"),
        HUB("nginx:v..", "nginx", "v..", NULL, false, "docker.io/library/nginx:v..", "nginx:v.."),
        HUB("nginx:a-", "nginx", "a-", NULL, false, "docker.io/library/nginx:a-", "nginx:a-"),
        HUB("nginx:1.0-rc.1_b", "nginx", "1.0-rc.1_b", NULL, false,
            "docker.io/library/nginx:1.0-rc.1_b", "nginx:1.0-rc.1_b"),
        HUB("nginx:__", "nginx", "__", NULL, false, "docker.io/library/nginx:__", "nginx:__"),
        /* looks like an image ID but is not exactly one: a normal reference */
        HUB("sha256:abc", "sha256", "abc", NULL, false, "docker.io/library/sha256:abc",
            "sha256:abc"),
        HUB("sha512:" HEX64, "sha512", HEX64, NULL, false, "docker.io/library/sha512:" HEX64,
            "sha512:" HEX64),
        HUB(HEX64 ":v1", HEX64, "v1", NULL, false, "docker.io/library/" HEX64 ":v1", HEX64 ":v1"),
        HUB(HEX64 "@" D256, HEX64, NULL, D256, false, "docker.io/library/" HEX64 "@" D256,
            HEX64 "@" D256),
        HUB("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", "latest", NULL, true,
            "docker.io/library/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde:"
            "latest",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde:latest"),
        HUB(HEX64 "0", HEX64 "0", "latest", NULL, true, "docker.io/library/" HEX64 "0:latest",
            HEX64 "0:latest"),
        /* "library/sha256:<64 hex>" is a repository; its short form would be an image ID */
        HUB("library/sha256:" HEX64, "sha256", HEX64, NULL, false,
            "docker.io/library/sha256:" HEX64, "library/sha256:" HEX64),
        /* real-world names */
        { "ghcr.io/owner/repo:sha-abcdef", "ghcr.io", "owner/repo", "sha-abcdef", NULL, false,
          "ghcr.io/owner/repo:sha-abcdef", "ghcr.io/owner/repo:sha-abcdef" },
        { "registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", NULL, false,
          "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9" },
        { "registry.k8s.io/kube-apiserver:v1.29.0", "registry.k8s.io", "kube-apiserver", "v1.29.0",
          NULL, false, "registry.k8s.io/kube-apiserver:v1.29.0",
          "registry.k8s.io/kube-apiserver:v1.29.0" },
        { "mcr.microsoft.com/dotnet/runtime:8.0", "mcr.microsoft.com", "dotnet/runtime", "8.0",
          NULL, false, "mcr.microsoft.com/dotnet/runtime:8.0",
          "mcr.microsoft.com/dotnet/runtime:8.0" },
        { "public.ecr.aws/lambda/python:3.12", "public.ecr.aws", "lambda/python", "3.12", NULL,
          false, "public.ecr.aws/lambda/python:3.12", "public.ecr.aws/lambda/python:3.12" },
        { "us-docker.pkg.dev/project/repo/image:tag", "us-docker.pkg.dev", "project/repo/image",
          "tag", NULL, false, "us-docker.pkg.dev/project/repo/image:tag",
          "us-docker.pkg.dev/project/repo/image:tag" },
        { "nvcr.io/nvidia/cuda:12.3.1-base-ubuntu22.04", "nvcr.io", "nvidia/cuda",
          "12.3.1-base-ubuntu22.04", NULL, false, "nvcr.io/nvidia/cuda:12.3.1-base-ubuntu22.04",
          "nvcr.io/nvidia/cuda:12.3.1-base-ubuntu22.04" },
        { "k8s.gcr.io/pause", "k8s.gcr.io", "pause", "latest", NULL, true,
          "k8s.gcr.io/pause:latest", "k8s.gcr.io/pause:latest" },
        { "bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", NULL, false,
          "docker.io/bitnami/redis:7.2", "bitnami/redis:7.2" },
};

struct invalid_case {
        const char *in;
        const char *error; /* a substring of the message */
};

static const struct invalid_case invalid[] = {
        /* empty things */
        { "", "empty" },
        { ":justtag", "empty repository name" },
        { "@" D256, "empty repository name" },
        { "nginx:", "empty tag" },
        { "nginx@", "empty digest" },
        { "nginx:@" D256, "empty tag" },
        { "nginx:1.0@", "empty digest" },
        /* case */
        { "Nginx", "repository name must be lowercase" },
        { "Uppercase:tag", "repository name must be lowercase" },
        { "test:5000/Uppercase/lowercase:tag", "repository name must be lowercase" },
        { "example.com/Foo", "repository name must be lowercase" },
        { "foo/Bar", "repository name must be lowercase" },
        { "FOO/Bar", "repository name must be lowercase" },
        { "docker.io/Library/nginx", "repository name must be lowercase" },
        { "nginx@SHA256:" HEX64, "repository name must be lowercase" },
        { UHEX64, "repository name must be lowercase" },
        /* image IDs */
        { "sha256:" HEX64, "is an image ID, not a reference" },
        { HEX64, "is an image ID, not a reference" },
        /* tags */
        { "nginx:-1", "a tag must start with" },
        { "nginx:.a", "a tag must start with" },
        { "nginx::1", "a tag must start with" },
        { "nginx:a:b", "invalid character in tag" },
        { "a:b:c", "invalid character in tag" },
        { "nginx:a b", "invalid character in tag" },
        { "ubuntu:22.04 ", "invalid character in tag" },
        { "a/b:c/d", "invalid character in tag" },
        { "nginx:v1+build", "invalid character in tag" },
        /* digests */
        { "nginx@sha256:abc", "at least 32 hex digits" },
        { "nginx@sha256:" HEX32, "a sha256 digest has 64 hex digits" },
        { "nginx@sha256:" HEX64 "0", "a sha256 digest has 64 hex digits" },
        { "nginx@sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc",
          "a sha256 digest has 64 hex digits" },
        { "nginx:v1@sha256:" UHEX64, "hex must be lowercase" },
        { "nginx@sha256:gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg",
          "must be hex digits" },
        { "nginx@md5:" HEX32, "unsupported digest algorithm" },
        { "validname@invaliddigest:" HEX64, "unsupported digest algorithm" },
        { "nginx@sha256.v2:" HEX64, "unsupported digest algorithm" },
        { "nginx@sha256+b64:" HEX64, "unsupported digest algorithm" },
        { "nginx:v1@SHA256:" HEX64, "unsupported digest algorithm" },
        { "nginx@sha384:" HEX64, "a sha384 digest has 96 hex digits" },
        { "nginx@sha512:" HEX64, "a sha512 digest has 128 hex digits" },
        { "nginx@sha512:" HEX96, "a sha512 digest has 128 hex digits" },
        { "nginx@" HEX64, "a digest is algorithm:hex" },
        { "a@b", "a digest is algorithm:hex" },
        { "nginx@1sha256:" HEX64, "invalid digest algorithm" },
        { "nginx@sha256-:" HEX64, "invalid digest algorithm" },
        { "nginx@:" HEX64, "invalid digest algorithm" },
        { "nginx@" D256 "@" D256, "must be hex digits" },
        { "nginx@" D256 ":tag", "must be hex digits" },
        { "nginx@" D256 " ", "must be hex digits" },
        /* path components */
        { "a//b", "empty path component" },
        { "/a", "empty path component" },
        { "example.com//a", "empty path component" },
        { "a/", "ends with '/'" },
        { "nginx/", "ends with '/'" },
        { "example.com/a/", "ends with '/'" },
        { "example.com/", "empty repository name" },
        { "a..b", "a separator" },
        { "a___b", "a separator" },
        { "a._b", "a separator" },
        { "a-_b", "a separator" },
        { "a_.b", "a separator" },
        { "a.-b", "a separator" },
        { "a-", "a separator" },
        { "a_", "a separator" },
        { "a.", "a separator" },
        { "a__", "a separator" },
        { "foo/bar-", "a separator" },
        { "foo/bar-/baz", "a separator" },
        { "-a", "must start with a lowercase letter or digit" },
        { "_a", "must start with a lowercase letter or digit" },
        { ".a", "must start with a lowercase letter or digit" },
        { "foo/-bar", "must start with a lowercase letter or digit" },
        { " ubuntu", "must start with a lowercase letter or digit" },
        { "[]/a", "must start with a lowercase letter or digit" },
        { "[2001:db8::1]", "must start with a lowercase letter or digit" },
        { "[2001:db8::1]:5000", "must start with a lowercase letter or digit" },
        { "[2001:db8::1]:tag", "must start with a lowercase letter or digit" },
        { "\xc3\xa9/a", "must start with a lowercase letter or digit" },
        { "a$b", "invalid character in repository name" },
        { "aa/asdf$$^/aa", "invalid character in repository name" },
        { "a b", "invalid character in repository name" },
        { "a\tb", "invalid character in repository name" },
        { "ubuntu\n", "invalid character in repository name" },
        { "example.com/a?b", "invalid character in repository name" },
        { "example.com/a+b", "invalid character in repository name" },
        /* domains */
        { "[fe80::1%eth0]:5000/repo", "IPv6 address" },
        { "[fe80::1%@invalidzone]:5000/repo", "IPv6 address" },
        { "[::1/a", "IPv6 address" },
        { "[::g]/a", "IPv6 address" },
        { "[::1]x/a", "registry host '[::1]x'" },
        { "[::1]:/a", "empty port" },
        { "example.com:/a", "empty port" },
        { "localhost:/a", "empty port" },
        { "http://example.com/a", "empty port" },
        { "example.com:abc/a", "port must be decimal digits" },
        { "example.com:5000:6000/a", "port must be decimal digits" },
        { "nginx:a/b", "port must be decimal digits" },
        { "-example.com/a", "must not start or end with '-'" },
        { "example-.com/a", "must not start or end with '-'" },
        { "example..com/a", "empty domain component" },
        { ".example.com/a", "empty domain component" },
        { "example.com./a", "empty domain component" },
        { ":5000/a", "empty domain component" },
        /* distribution reads these as a path with an empty domain; pinlet refuses */
        { "exa_mple.com/a", "registry host 'exa_mple.com'" },
        { "my_registry.local/app", "registry host" },
        { "Foo_bar/x", "registry host" },
        /* too long: normalized name over 255 (also see test_name_length) */
        { "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/"
          "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/"
          "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a:"
          "tag",
          "repository name longer than 255 characters" },
};

static int check_str(const char *in, const char *field, const char *got, const char *want)
{
        if (streq_ptr(got, want))
                return 0;
        print_error("%s: %s is '%s', expected '%s'\n", in, field, got ? got : "(null)",
                    want ? want : "(null)");
        return 1;
}

/* Parses in and compares the fields with c; also that the normalized and the familiar
 * form parse back to the same reference. Returns the number of mismatches. */
static int check_valid(const struct valid_case *c)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *r = NULL;
        _cleanup_free_ char *str = NULL, *fam = NULL;
        int bad = 0;
        const char *forms[2];

        if (pinlet_ref_parse(c->in, &r, &err) < 0) {
                print_error("%s: unexpected error: %s\n", c->in, pinlet_error_message(err, 0));
                return 1;
        }
        str = pinlet_ref_string(r);
        fam = pinlet_ref_familiar(r);
        bad += check_str(c->in, "domain", r->domain, c->domain);
        bad += check_str(c->in, "path", r->path, c->path);
        bad += check_str(c->in, "tag", r->tag, c->tag);
        bad += check_str(c->in, "digest", r->digest, c->digest);
        bad += check_str(c->in, "string", str, c->string);
        bad += check_str(c->in, "familiar", fam, c->familiar);
        if (r->tag_defaulted != c->defaulted) {
                print_error("%s: tag_defaulted is %d\n", c->in, r->tag_defaulted);
                bad++;
        }
        forms[0] = str;
        forms[1] = fam;
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                _cleanup_(pinlet_error_freep) struct pinlet_error *err2 = NULL;
                _cleanup_ref_ struct pinlet_ref *r2 = NULL;

                if (pinlet_ref_parse(forms[i], &r2, &err2) < 0) {
                        print_error("%s: '%s' does not parse back: %s\n", c->in, forms[i],
                                    pinlet_error_message(err2, 0));
                        bad++;
                        continue;
                }
                bad += check_str(forms[i], "domain (reparsed)", r2->domain, r->domain);
                bad += check_str(forms[i], "path (reparsed)", r2->path, r->path);
                bad += check_str(forms[i], "tag (reparsed)", r2->tag, r->tag);
                bad += check_str(forms[i], "digest (reparsed)", r2->digest, r->digest);
        }
        return bad;
}

static void test_valid(void **state)
{
        int bad = 0;

        for (size_t i = 0; i < ELEMENTSOF(valid); i++)
                bad += check_valid(&valid[i]);
        print_message("%zu valid references checked\n", ELEMENTSOF(valid));
        assert_int_equal(bad, 0);
}

static int check_invalid(const char *in, const char *want)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        struct pinlet_ref *r = NULL;
        int ret = pinlet_ref_parse(in, &r, &err);

        if (ret >= 0) {
                print_error("'%s': parsed, expected error '%s'\n", in, want);
                pinlet_ref_free(r);
                return 1;
        }
        if (r) {
                print_error("'%s': output written on failure\n", in);
                return 1;
        }
        if (ret != -EINVAL || !err || err->code != -EINVAL ||
            strncmp(err->message, "invalid reference '", 19) != 0 || !strstr(err->message, want)) {
                print_error("'%s': got %d '%s', expected -EINVAL '...%s...'\n", in, ret,
                            err ? err->message : "(no error)", want);
                return 1;
        }
        return 0;
}

static void test_invalid(void **state)
{
        int bad = 0;

        for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
                bad += check_invalid(invalid[i].in, invalid[i].error);
        print_message("%zu invalid references checked\n", ELEMENTSOF(invalid));
        assert_int_equal(bad, 0);
}

static char *repeat(char c, size_t n)
{
        char *s = malloc(n + 1);

        assert_non_null(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static char *concat(const char *a, const char *b, const char *c)
{
        char *s;

        assert_true(asprintf(&s, "%s%s%s", a, b, c) >= 0);
        return s;
}

static void expect_name(const char *in, const char *name)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *r = NULL;
        _cleanup_free_ char *got = NULL;

        if (pinlet_ref_parse(in, &r, &err) < 0)
                fail_msg("'%s': %s", in, pinlet_error_message(err, 0));
        got = pinlet_ref_name(r);
        assert_string_equal(got, name);
        assert_int_equal(strlen(got), strlen(name));
}

/* NameTotalLengthMax = 255, counted on the normalized name (domain/path). */
static void test_name_length(void **state)
{
        /* docker.io/library/ is 18 characters: 237 more make 255 */
        _cleanup_free_ char *p237 = repeat('a', 237), *p238 = repeat('a', 238);
        _cleanup_free_ char *hub255 = concat("docker.io/library/", p237, "");
        _cleanup_free_ char *hub256 = concat(p238, ":v1", "");
        /* example.com/ is 12: 243 more make 255 */
        _cleanup_free_ char *p243 = repeat('b', 243), *p244 = repeat('b', 244);
        _cleanup_free_ char *ex255 = concat("example.com/", p243, "");
        _cleanup_free_ char *ex256 = concat("example.com/", p244, "@" D256);
        /* the input may be longer than 255 when index.docker.io folds to docker.io:
         * docker.io/foo/ is 14, so 241 more make 255 while the input has 261 */
        _cleanup_free_ char *p241 = repeat('c', 241), *p242 = repeat('c', 242);
        _cleanup_free_ char *idx255 = concat("index.docker.io/foo/", p241, "");
        _cleanup_free_ char *idx256 = concat("index.docker.io/foo/", p242, "");
        _cleanup_free_ char *want_idx = concat("docker.io/foo/", p241, "");

        assert_int_equal(strlen(hub255), 255);
        expect_name(p237, hub255);
        assert_int_equal(check_invalid(hub256, "repository name longer than 255 characters (256)"),
                         0);
        assert_int_equal(strlen(ex255), 255);
        expect_name(ex255, ex255);
        assert_int_equal(check_invalid(ex256, "longer than 255"), 0);
        assert_int_equal(strlen(idx255), 261);
        expect_name(idx255, want_idx);
        assert_int_equal(check_invalid(idx256, "longer than 255"), 0);
}

/* tag := [\w][\w.-]{0,127}: 128 characters at most */
static void test_tag_length(void **state)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *r = NULL;
        _cleanup_free_ char *t128 = repeat('T', 128), *t129 = repeat('T', 129);
        _cleanup_free_ char *ok = concat("nginx:", t128, "");
        _cleanup_free_ char *ok2 = concat("nginx:", t128, "@" D256);
        _cleanup_free_ char *bad = concat("nginx:", t129, "");
        _cleanup_free_ char *bad2 = concat("example.com/a:", t129, "@" D256);

        assert_int_equal(pinlet_ref_parse(ok, &r, &err), 0);
        assert_string_equal(r->tag, t128);
        pinlet_ref_free(TAKE_PTR(r));
        assert_int_equal(pinlet_ref_parse(ok2, &r, &err), 0);
        assert_string_equal(r->tag, t128);
        assert_string_equal(r->digest, D256);
        assert_int_equal(check_invalid(bad, "tag longer than 128 characters"), 0);
        assert_int_equal(check_invalid(bad2, "tag longer than 128 characters"), 0);
}

/* Error messages quote the input cut short and without control characters. */
static void test_error_message_sanitized(void **state)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_(pinlet_error_freep) struct pinlet_error *err2 = NULL;
        _cleanup_(pinlet_error_freep) struct pinlet_error *err3 = NULL;
        _cleanup_free_ char *longin = repeat('A', 5000);
        struct pinlet_ref *r = NULL;

        assert_int_equal(pinlet_ref_parse("a\nb\x1b[31m", &r, &err), -EINVAL);
        assert_null(strchr(err->message, '\n'));
        assert_null(strchr(err->message, '\x1b'));
        assert_non_null(strstr(err->message, "'a?b?[31m'"));
        assert_int_equal(pinlet_ref_parse(longin, &r, &err2), -EINVAL);
        assert_true(strlen(err2->message) < 400);
        assert_non_null(strstr(err2->message, "...'"));
        assert_int_equal(pinlet_ref_parse(NULL, &r, &err3), -EINVAL);
        assert_null(r);
        /* a NULL error pointer is allowed */
        assert_int_equal(pinlet_ref_parse("Nginx", &r, NULL), -EINVAL);
        assert_null(r);
}

static void test_is_image_id(void **state)
{
        assert_true(pinlet_ref_is_image_id(HEX64));
        assert_true(pinlet_ref_is_image_id("sha256:" HEX64));
        assert_false(pinlet_ref_is_image_id(UHEX64));
        assert_false(pinlet_ref_is_image_id("sha256:" UHEX64));
        assert_false(pinlet_ref_is_image_id(HEX64 "0"));
        assert_false(pinlet_ref_is_image_id("sha256:" HEX64 "0"));
        assert_false(pinlet_ref_is_image_id("sha512:" HEX64));
        assert_false(pinlet_ref_is_image_id("sha256:" HEX32));
        assert_false(pinlet_ref_is_image_id("sha256:"));
        assert_false(pinlet_ref_is_image_id("sha256:sha256:" HEX64));
        assert_false(pinlet_ref_is_image_id("nginx"));
        assert_false(pinlet_ref_is_image_id("nginx@sha256:" HEX64));
        assert_false(pinlet_ref_is_image_id(""));
        assert_false(pinlet_ref_is_image_id(NULL));
}

static void test_digest_valid(void **state)
{
        assert_true(pinlet_ref_digest_valid(D256));
        assert_true(pinlet_ref_digest_valid(D384));
        assert_true(pinlet_ref_digest_valid(D512));
        assert_false(pinlet_ref_digest_valid("sha256:" UHEX64));
        assert_false(pinlet_ref_digest_valid("sha256:" HEX96));
        assert_false(pinlet_ref_digest_valid("sha384:" HEX64));
        assert_false(pinlet_ref_digest_valid("sha512:" HEX64));
        assert_false(pinlet_ref_digest_valid("md5:" HEX32));
        assert_false(pinlet_ref_digest_valid("sha256:"));
        assert_false(pinlet_ref_digest_valid(":" HEX64));
        assert_false(pinlet_ref_digest_valid(HEX64));
        assert_false(pinlet_ref_digest_valid("sha256:" HEX64 "\n"));
        assert_false(pinlet_ref_digest_valid(""));
        assert_false(pinlet_ref_digest_valid(NULL));
}

static void test_with_digest(void **state)
{
        _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
        _cleanup_ref_ struct pinlet_ref *tagged = NULL, *both = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(pinlet_ref_parse("nginx:1.25", &tagged, &err), 0);
        a = pinlet_ref_with_digest(tagged, D256);
        assert_string_equal(a, "docker.io/library/nginx@" D256);
        errno = 0;
        assert_null(pinlet_ref_with_digest(tagged, NULL));
        assert_int_equal(errno, EINVAL);
        errno = 0;
        assert_null(pinlet_ref_with_digest(tagged, "sha256:" UHEX64));
        assert_int_equal(errno, EINVAL);

        assert_int_equal(pinlet_ref_parse("[::1]:5000/app:v1@" D256, &both, &err), 0);
        b = pinlet_ref_with_digest(both, NULL);
        assert_string_equal(b, "[::1]:5000/app@" D256);
        c = pinlet_ref_with_digest(both, D512);
        assert_string_equal(c, "[::1]:5000/app@" D512);
}

/* The domain keeps its case (it is what gets pulled); the host key is lower-case. */
static void test_host_key(void **state)
{
        static const struct {
                const char *in, *domain, *name, *key;
        } cases[] = {
                { "Reg.Example:5000/team/app:v1", "Reg.Example:5000", "Reg.Example:5000/team/app",
                  "reg.example:5000" },
                { "Docker.io/library/nginx", "Docker.io", "Docker.io/library/nginx", "docker.io" },
                { "nginx", "docker.io", "docker.io/library/nginx", "docker.io" },
                { "LOCALHOST/app", "LOCALHOST", "LOCALHOST/app", "localhost" },
                { "[::AB]:5000/app@" D256, "[::AB]:5000", "[::AB]:5000/app", "[::ab]:5000" },
                { "127.0.0.1:5000/app", "127.0.0.1:5000", "127.0.0.1:5000/app", "127.0.0.1:5000" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_(pinlet_error_freep) struct pinlet_error *err = NULL;
                _cleanup_ref_ struct pinlet_ref *r = NULL;
                _cleanup_free_ char *name = NULL, *key = NULL;

                if (pinlet_ref_parse(cases[i].in, &r, &err) < 0)
                        fail_msg("'%s': %s", cases[i].in, err->message);
                assert_string_equal(r->domain, cases[i].domain);
                name = pinlet_ref_name(r);
                assert_string_equal(name, cases[i].name);
                key = pinlet_ref_host_key(r);
                assert_non_null(key);
                assert_string_equal(key, cases[i].key);
                /* a new string: the reference is left as it was */
                assert_ptr_not_equal(key, r->domain);
                assert_string_equal(r->domain, cases[i].domain);
        }
}

static void test_short_name(void **state)
{
        static const struct {
                const char *in, *want; /* want NULL: names a registry */
        } cases[] = {
                { "nginx", "nginx" },
                { "nginx:1.25", "nginx" },
                { "library/nginx:1.25", "library/nginx" },
                { "team/"
                  "app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                  "team/app" },
                { "team/"
                  "app:v1@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                  "team/app" },
                { "localhost:5000", "localhost" }, /* docker.io/library/localhost, tag 5000 */
                { "docker.io/nginx", NULL },
                { "localhost/app", NULL },
                { "reg:5000/app:v1", NULL },
                { "reg.example/team/app", NULL },
                { "MyReg/app", NULL },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *got = pinlet_ref_short_name(cases[i].in);

                if (!cases[i].want && got)
                        fail_msg("'%s': short name '%s', want none", cases[i].in, got);
                if (cases[i].want && (!got || strcmp(got, cases[i].want) != 0))
                        fail_msg("'%s': short name '%s', want '%s'", cases[i].in,
                                 got ? got : "(none)", cases[i].want);
                free(got);
        }
}

static void test_requalify(void **state)
{
        static const char *const bad[] = {
                "nginx",
                "team/app",
                "quay.io/app:v1",
                "quay.io/App",
                "quay.io/"
                "app@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                "",
        };
        struct pinlet_ref *r = NULL;
        struct pinlet_error *err = NULL;
        char *s;

        assert_int_equal(pinlet_ref_parse("app:v1", &r, NULL), 0);
        assert_int_equal(pinlet_ref_requalify(r, "127.0.0.1:5000/tiny/app", NULL), 0);
        s = pinlet_ref_string(r);
        assert_string_equal(s, "127.0.0.1:5000/tiny/app:v1");
        free(s);
        /* docker.io names normalized as the runtime does */
        assert_int_equal(pinlet_ref_requalify(r, "docker.io/nginx", NULL), 0);
        s = pinlet_ref_string(r);
        assert_string_equal(s, "docker.io/library/nginx:v1");
        free(s);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (pinlet_ref_requalify(r, bad[i], &err) != -EINVAL)
                        fail_msg("'%s' accepted", bad[i]);
                assert_non_null(err);
                pinlet_error_free(err);
                err = NULL;
                s = pinlet_ref_string(r);
                assert_string_equal(s, "docker.io/library/nginx:v1");
                free(s);
        }
        pinlet_ref_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_name_length),
                cmocka_unit_test(test_tag_length),
                cmocka_unit_test(test_error_message_sanitized),
                cmocka_unit_test(test_is_image_id),
                cmocka_unit_test(test_digest_valid),
                cmocka_unit_test(test_with_digest),
                cmocka_unit_test(test_host_key),
                cmocka_unit_test(test_short_name),
                cmocka_unit_test(test_requalify),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
