#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the intercept fuzzers (corpus/intercept_{pull,status,create}/):
valid CRI requests encoded by hand (field numbers of runtime.v1), full of fields pinlet's
schema does not model, plus a few edge cases. Deterministic: rerunning rewrites the same
files. Usage: test/fuzz/gen_intercept_corpus.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def tag(f, wt):
    return varint((f << 3) | wt)


def u(f, v):
    return tag(f, 0) + varint(v)


def s(f, b):
    if isinstance(b, str):
        b = b.encode()
    return tag(f, 2) + varint(len(b)) + b


def f64(f, v):
    return tag(f, 1) + struct.pack("<Q", v)


def f32(f, v):
    return tag(f, 5) + struct.pack("<I", v)


def kv(f, k, v):
    return s(f, s(1, k) + s(2, v))


def image_spec(image, user=None, extra=True):
    b = s(1, image) if image is not None else b""
    if extra:
        b += kv(2, "io.kubernetes.cri.image-annotation", "x")
        if user:
            b += s(18, user)
        b += s(19, "runc")
    return b


def sandbox_config(ns="prod", name="web-0", uid="5c1d6c7e-0000-4000-8000-000000000001"):
    md = s(1, name) + s(2, uid) + s(3, ns) + u(4, 1)
    return (s(1, md) + s(2, name) + s(3, "/var/log/pods/x") +
            s(4, s(1, "10.96.0.10") + s(2, "svc.cluster.local") + s(3, "ndots:5")) +
            s(5, u(1, 0) + u(2, 80) + u(3, 8080)) + kv(6, "app", "web") +
            kv(7, "kubernetes.io/config.source", "api") +
            s(8, s(1, "/kubepods/pod1") + s(2, u(6, 1000))))


def auth(kind):
    if kind == "basic":
        return s(1, "alice") + s(2, "s3cret") + s(4, "registry.example")
    if kind == "auth":
        return s(3, "YWxpY2U6czNjcmV0") + s(4, "registry.example:5000")
    if kind == "nul":  # valid protobuf, but its C string would be another password
        return s(1, "alice") + s(2, "s3cret\0tail") + s(4, "registry.example")
    return s(5, "identity") + s(6, "bearer-token")


def pull(image, a=None, sc=True, extra=True, pod_name="web-0"):
    b = s(1, image_spec(image, image, extra))
    if a:
        b += s(2, auth(a))
    if sc:
        b += s(3, sandbox_config(name=pod_name))
    return b


def status(image, verbose=False):
    b = s(1, image_spec(image))
    if verbose:
        b += u(2, 1)
    return b


def mount(path, image=None, host=None):
    b = s(1, path)
    if host:
        b += s(2, host) + u(3, 1) + u(5, 2)
    if image is not None:
        b += s(9, image_spec(image, image))
    return s(7, b)


def create(image, mounts=(), user="app:v1", sc=True, pod_name="web-0"):
    cfg = (s(1, s(1, "app") + u(2, 0)) + s(2, image_spec(image, user)) + s(3, "/bin/sh") +
           s(4, "-c") + s(4, "sleep 1") + s(5, "/srv") + s(6, s(1, "A") + s(2, "1")))
    for m in mounts:
        cfg += mount(*m)
    cfg += (s(8, s(1, "/dev/fuse") + s(2, "/dev/fuse") + s(3, "rwm")) +
            kv(9, "io.kubernetes.container.name", "app") + kv(10, "hash", "abc") +
            s(11, "app/0.log") + u(12, 1) + s(15, s(1, u(1, 100000) + u(4, 1 << 28))))
    b = s(1, "4f2a9e0c5b1d") + s(2, cfg)
    if sc:
        b += s(3, sandbox_config(name=pod_name))
    return b


ID = "sha256:" + "ab" * 32
DIGEST = "docker.io/library/nginx@sha256:" + "01" * 32

CORPORA = {
    "intercept_pull": {
        "tag": pull("nginx:1.25"),
        "tag_basic_auth": pull("registry.example/team/app:v1", "basic"),
        "tag_auth_string": pull("registry.example:5000/app", "auth"),
        "tag_tokens": pull("ghcr.io/org/tool:2", "tokens"),
        "digest": pull(DIGEST),
        "tag_and_digest": pull("nginx:1.25@sha256:" + "01" * 32),
        "image_id": pull(ID, sc=False),
        "ipv6_registry": pull("[::1]:5000/app:v1", extra=False),
        "no_sandbox": pull("busybox", sc=False, extra=False),
        "unknown_fields": pull("alpine:3") + f64(1000, 7) + f32(99, 1) + s(5000, "x"),
        "empty": b"",
        "empty_image_spec": s(1, b""),
        # fuzzer finding: field number 0 spelled as an overlong varint (protobuf-c took it)
        "regress_overlong_field0": bytes.fromhex("0a00300a8000003011"),
        # NUL bytes in text fields: refused with the field's path
        "nul_image": pull("nginx:1.25\0evil"),
        "nul_password": pull("registry.example/team/app:v1", "nul"),
        "nul_pod_name": pull("nginx:1.25", pod_name="web\0-0"),
        # registry hosts are case-insensitive: one cache key, one lower-case queue
        "upper_host": pull("Registry.Example:5000/team/app:v1"),
    },
    "intercept_status": {
        "tag": status("nginx:1.25"),
        "tag_verbose": status("registry.example/team/app:v1", True),
        "digest": status(DIGEST),
        "image_id": status(ID),
        "bare_id": status("ab" * 32),
        "unknown_fields": status("alpine") + s(99, "x") + f64(3, 1),
        "empty": b"",
        "empty_image_spec": s(1, b""),
        "regress_overlong_field0": bytes.fromhex("85000a000a000a00"),
        "nul_image": status("nginx:1.25\0evil"),
        "upper_host": status("Registry.Example:5000/team/app:v1"),
    },
    "intercept_create": {
        "kubelet_image_id": create(ID, user="nginx:1.25"),
        "tag": create("nginx:1.25"),
        "digest": create(DIGEST),
        "mounts_mixed": create("app:v1", [("/data", None, "/var/lib/data"),
                                          ("/models", "models:v3"), ("/tmp", None, "/tmp")]),
        "mounts_all_images": create(ID, [("/a", "a:1"), ("/b", "b:2"), ("/c", DIGEST)]),
        "mount_empty_spec": create("app", [("/x", "")]),
        "no_sandbox": create("busybox", sc=False),
        "unknown_fields": create("alpine") + s(4, "x") + u(6, 9),
        "empty": b"",
        "config_only_image": s(2, s(2, s(1, "nginx"))),
        "nul_mount_image": create("app:v1", [("/models", "models:v3\0evil")]),
        "nul_pod_name": create("app:v1", pod_name="web\0-0"),
        "upper_host": create("Registry.Example/team/app:v1"),
    },
}

for corpus, files in CORPORA.items():
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)

# The interceptor harness (fuzz_intercept_icept.c): a control byte (method, mode,
# on_failure, the fake resolver's answer) before a request from the corpora above.
ICEPT = {
    "pull": (0, ["tag", "tag_basic_auth", "digest", "image_id", "unknown_fields",
                 "nul_image", "nul_password", "upper_host"]),
    "status": (1, ["tag", "image_id", "bare_id", "nul_image", "upper_host"]),
    "create": (2, ["tag", "mounts_mixed", "kubelet_image_id", "mounts_all_images",
                   "nul_mount_image", "nul_pod_name", "upper_host"]),
}
# enforce + digest, audit, off, enforce + unavailable (closed), enforce + unavailable (open)
CONTROLS = [0x00, 0x04, 0x08, 0xA0, 0xB0]
d = os.path.join(HERE, "corpus", "intercept_icept")
os.makedirs(d, exist_ok=True)
for kind, (method, names) in ICEPT.items():
    for name in names:
        data = CORPORA["intercept_" + kind][name]
        for c in CONTROLS:
            if name in ("digest", "image_id", "bare_id", "kubelet_image_id") and c != 0:
                continue
            path = os.path.join(d, "intercept_%s_%s_%02x" % (kind, name, c | method))
            with open(path, "wb") as fh:
                fh.write(bytes([c | method]) + data)
