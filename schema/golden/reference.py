#!/usr/bin/env python3
"""Independent reference implementation of cmod's v1 hash formats.

Re-derives the golden vectors frozen in schema/src/{content,store_path,signature,scan_entry}.rs and
store/src/sign.rs from the specification (docs/ARCHITECTURE.md, docs/SHARING.md), without
any cmod code: `pip install blake3 cryptography` then run this script; every line must
print OK.
"""
import struct
import sys

import base64

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def nix32(data: bytes) -> str:
    """Nix base32: bytes consumed from the end, 5 bits per character."""
    n = (len(data) * 8 + 4) // 5
    out = []
    for k in range(n - 1, -1, -1):
        b = k * 5
        i, j = b // 8, b % 8
        c = data[i] >> j
        if i + 1 < len(data):
            c |= data[i + 1] << (8 - j)
        out.append(ALPHABET[c & 31])
    return "".join(out)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def file_hash(executable: bool, data: bytes) -> bytes:
    return blake3.blake3(b"cmod-file-v1\0" + bytes([executable]) + u64(len(data)) + data).digest()


def symlink_hash(target: bytes) -> bytes:
    return blake3.blake3(b"cmod-symlink-v1\0" + u64(len(target)) + target).digest()


def dir_hash(entries) -> bytes:
    h = b"cmod-dir-v1\0" + u64(len(entries))
    for name, child in sorted(entries):
        h += u64(len(name)) + name + child
    return blake3.blake3(h).digest()


def text(h: bytes) -> str:
    return "blake3:" + nix32(h)


def store_path(kind: str, content: str, name: str, refs=()) -> str:
    h = b"cmod-store-path-v1\0" + kind.encode() + b"\0" + content.encode() + b"\0" + name.encode()
    for r in sorted(refs):
        h += b"\0" + r.encode()
    return nix32(blake3.blake3(h).digest()[:20]) + "-" + name


def path_fingerprint(path: str, content: str, size: int, refs=()) -> str:
    return f"cmod-path-sig-v1;{path};{content};{size};" + ",".join(sorted(refs))


def trace_fingerprint(key: bytes, sandbox: str, drv: str, outputs: dict) -> str:
    outs = ",".join(f"{n}={p}" for n, p in sorted(outputs.items()))
    return f"cmod-trace-sig-v1;{nix32(key)};{sandbox};{drv};{outs}"


def scan_fingerprint(key: bytes, result_canonical_json: bytes) -> str:
    return f"cmod-scan-sig-v1;{text(key)};{text(blake3.blake3(result_canonical_json).digest())}"


def canonical_json(value) -> bytes:
    """cmod's canonical JSON: sorted keys, no whitespace, UTF-8, integers only."""
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def drv_path(drv: dict) -> str:
    """The `.drv` store path: the content hash of the canonical encoding, named
    `<name>.drv`, referencing every input store path and input derivation."""
    refs = []
    for i in drv["inputs"]:
        f = i["from"]
        refs.append(f["path"] if "path" in f else f["drv"])
    return store_path("drv", text(file_hash(False, canonical_json(drv))), drv["name"] + ".drv", sorted(set(refs)))


def host_drv_vector():
    """The derivation of schema/src/derivation.rs `golden_vector_with_host_files`."""
    toolchain = text(file_hash(False, b"toolchain"))
    source = store_path("source", text(file_hash(False, b"export module hello;\n")), "hello.cppm")
    drv = {
        "version": 2,
        "name": "zip-0.1.0-zip",
        "kind": "link",
        "toolchain": toolchain,
        "tool": "c++",
        "args": ["-fuse-ld=lld", "-o", "out/zip", "-lz"],
        "env": {},
        "host": {
            "/usr/include/zlib.h": text(file_hash(False, b"zlib.h")),
            "/usr/lib/x86_64-linux-gnu/libz.so": text(file_hash(False, b"libz")),
        },
        "inputs": [{"at": "src/hello/hello.cppm", "from": {"path": source}, "role": "source"}],
        "outputs": {"exe": {"at": "out/zip", "name": "zip-0.1.0-zip"}},
    }
    return canonical_json(drv).decode(), drv_path(drv)


def consumer_trace_key(bmi_drv: dict) -> str:
    """The trace key (sandbox `full`) of the resolved consumer of derivation.rs
    `golden_vectors`: the object of `main` reading `hello`'s BMI through the module map."""
    consumer = dict(bmi_drv)
    consumer["name"] = "hello-0.1.0-main.o"
    consumer["kind"] = "object"
    consumer["args"] = ["@modules.rsp", "-x", "c++", "-c", "src/hello/hello.cppm", "-o", "out/main.o"]
    pcm = store_path("output", text(file_hash(False, b"pcm")), "hello-0.1.0-hello.pcm")
    consumer["inputs"] = bmi_drv["inputs"] + [{"at": "bmi/hello.pcm", "from": {"path": pcm}, "role": "bmi"}]
    consumer["inputs"].sort(key=lambda i: i["at"])
    consumer["outputs"] = {"obj": {"at": "out/main.o", "name": "hello-0.1.0-main.o"}}
    key = blake3.blake3(b"cmod-trace-v1\0full\0" + canonical_json(consumer)).digest()
    return text(key)


def main() -> int:
    hello = file_hash(False, b"hello\n")
    src = store_path("source", text(hello), "main.cpp")
    checks = [
        (text(file_hash(False, b"")), "blake3:1npw6184dclm98l0g5069v2jwzwqbmx5g3zhlfqnk02gncai7fx8"),
        (text(hello), "blake3:0yjb5l6px9g3994lzgq9mncq00p9v70piw0fng2dq6k5hywcgrc6"),
        (text(file_hash(True, b"hello\n")), "blake3:0zxgp5i72r8l6mdysa1l35xpwf8dcc9p7rzjq7lp08p3iihyvspl"),
        (text(symlink_hash(b"../x")), "blake3:15xvkzv4vscv9hgkgm3yjcyspg6xy9n08z20niz27n7i5al58i5g"),
        (
            text(dir_hash([(b"b.txt", hello), (b"a", dir_hash([])), (b"link", symlink_hash(b"b.txt"))])),
            "blake3:04c12l7h14hys8yqsk63qm62afvwc1rapiapzv9iwbksid69g47p",
        ),
        (src, "jrdcqn0wj4nf27nf91j2a27x5bhfalx3-main.cpp"),
        (
            store_path("output", text(hello), "hello-0.1.0-main.o", [src]),
            "1f91dpxvahvcpp61w11cagmc3pgmaynw-hello-0.1.0-main.o",
        ),
    ]
    out = store_path("output", text(hello), "hello-0.1.0-main.o", [src])
    drv = store_path("drv", text(hello), "main.o.drv")
    sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    src_fp = path_fingerprint(src, text(hello), 6)
    checks += [
        (
            path_fingerprint(out, text(hello), 6, [src]),
            "cmod-path-sig-v1;1f91dpxvahvcpp61w11cagmc3pgmaynw-hello-0.1.0-main.o;"
            "blake3:0yjb5l6px9g3994lzgq9mncq00p9v70piw0fng2dq6k5hywcgrc6;6;"
            "jrdcqn0wj4nf27nf91j2a27x5bhfalx3-main.cpp",
        ),
        (
            trace_fingerprint(file_hash(False, b"key"), "full", drv, {"obj": out}),
            "cmod-trace-sig-v1;16k052fq0x2lp2h45kdyzrdzp57j6qa7m3gv632ipafblhbc1131;full;"
            "rwkwfh4g72lhijiyvwgwnc19kgczvl4f-main.o.drv;"
            "obj=1f91dpxvahvcpp61w11cagmc3pgmaynw-hello-0.1.0-main.o",
        ),
        (
            # Canonical JSON: sorted keys, no whitespace.
            scan_fingerprint(file_hash(False, b"key"), b'{"provides":["m",true],"requires":["b","a"]}'),
            "cmod-scan-sig-v1;blake3:16k052fq0x2lp2h45kdyzrdzp57j6qa7m3gv632ipafblhbc1131;"
            "blake3:1sj4sz7m5nb3bss2a74gv56jbiqgyq3mqx2p21ddzj51cfp71hnk",
        ),
        ("cache.example-1:" + base64.b64encode(pub).decode(), "cache.example-1:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="),
        (
            "cache.example-1:" + base64.b64encode(sk.sign(src_fp.encode())).decode(),
            "cache.example-1:/fBR5NDy/GB7u02MTcSn2KYTLnGiUnLfQuRREJjj649YWObBWaoTWD75OBI6xYOSvBpOq6OI8/OWu2EZvv3nAg==",
        ),
    ]
    host_canonical, host_drv = host_drv_vector()
    # The BMI derivation of derivation.rs `golden_vectors` (no host files: the field is
    # omitted). Version 2: the BMI output names its module.
    sample = {
        "version": 2,
        "name": "hello-0.1.0-hello.pcm",
        "kind": "bmi",
        "toolchain": text(file_hash(False, b"toolchain")),
        "tool": "c++",
        "args": ["-std=c++20", "-x", "c++-module", "--precompile", "src/hello/hello.cppm", "-o", "out/hello.pcm"],
        "env": {},
        "inputs": [
            {
                "at": "src/hello/hello.cppm",
                "from": {"path": store_path("source", text(file_hash(False, b"export module hello;\n")), "hello.cppm")},
                "role": "source",
            }
        ],
        "outputs": {"bmi": {"at": "out/hello.pcm", "module": "hello", "name": "hello-0.1.0-hello.pcm"}},
    }
    checks.append((canonical_json(sample).decode(), GOLDEN_CANONICAL))
    checks.append((drv_path(sample), GOLDEN_DRV_PATH))
    checks.append((consumer_trace_key(sample), GOLDEN_TRACE_KEY))
    checks += [
        (host_canonical, GOLDEN_HOST_CANONICAL),
        (host_drv, GOLDEN_HOST_DRV_PATH),
    ]
    bad = 0
    for got, want in checks:
        ok = got == want
        bad += not ok
        print("OK  " if ok else "BAD ", got, "" if ok else f"(want {want})")
    return 1 if bad else 0


# The values frozen in schema/src/derivation.rs.
GOLDEN_CANONICAL = (
    '{"args":["-std=c++20","-x","c++-module","--precompile","src/hello/hello.cppm","-o","out/hello.pcm"],"env":{},"inputs":[{"at":"src/hello/hello.cppm","from":{"path":"m8707v8dpq06mp8bf6n2hvadj9vp4ifi-hello.cppm"},"role":"source"}],"kind":"bmi","name":"hello-0.1.0-hello.pcm","outputs":{"bmi":{"at":"out/hello.pcm","module":"hello","name":"hello-0.1.0-hello.pcm"}},"tool":"c++","toolchain":"blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm","version":2}'
)
GOLDEN_DRV_PATH = "0rfg5q3cg1cqyy9n8z2nx5j86c31glik-hello-0.1.0-hello.pcm.drv"
GOLDEN_TRACE_KEY = "blake3:0x4qx3bn1kjzjwgzqscl8ibb6sqf9mrl0nqqkdhfqm8yw3700dmy"
GOLDEN_HOST_CANONICAL = (
    '{"args":["-fuse-ld=lld","-o","out/zip","-lz"],"env":{},"host":{"/usr/include/zlib.h":"blake3:1xvjl4f4clm0bwx0ll4g43z5hk7f743c0fxcj3sd23b2qpgmsi6w","/usr/lib/x86_64-linux-gnu/libz.so":"blake3:094kj8kld9yk6l4h8b7cggs1nr8vfhna0lrcwwwykvxj47zqg449"},"inputs":[{"at":"src/hello/hello.cppm","from":{"path":"m8707v8dpq06mp8bf6n2hvadj9vp4ifi-hello.cppm"},"role":"source"}],"kind":"link","name":"zip-0.1.0-zip","outputs":{"exe":{"at":"out/zip","name":"zip-0.1.0-zip"}},"tool":"c++","toolchain":"blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm","version":2}'
)
GOLDEN_HOST_DRV_PATH = "zfw6rfld4fqqywgarhf4228q0cmkbq3d-zip-0.1.0-zip.drv"

if __name__ == "__main__":
    sys.exit(main())
