#!/usr/bin/env python3
"""Independent reference implementation of cmod's hash, key and signature formats.

Re-derives every golden vector of `schema/golden/vectors.txt` from the specification
(docs/FORMATS.md), without any cmod code: `pip install blake3 cryptography` then run
this script (scripts/check-golden does both). Every line must print OK. The Rust tests
read the same file (schema/golden/golden.rs), so the two implementations are held to the
same bytes, and a vector can never be "fixed" to match a regression on one side only.
"""
import base64
import hashlib
import json
import os
import struct
import sys

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.txt")

ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


# --- Encodings -------------------------------------------------------------------------


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


def H(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def text(h: bytes) -> str:
    """The text form of a 32-byte digest."""
    return "blake3:" + nix32(h)


def canonical_json(value) -> bytes:
    """cmod's canonical JSON: keys sorted (code-point order, which is UTF-8 byte order),
    no whitespace, UTF-8 (no \\u escapes beyond JSON's mandatory ones), integers only."""

    def no_floats(v):
        if isinstance(v, float):
            raise ValueError(f"floats have no canonical encoding: {v}")
        if isinstance(v, dict):
            for x in v.values():
                no_floats(x)
        if isinstance(v, list):
            for x in v:
                no_floats(x)

    no_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- Content hash and store paths --------------------------------------------------------


def file_hash(executable: bool, data: bytes) -> bytes:
    return H(b"cmod-file-v1\0" + bytes([executable]) + u64(len(data)) + data)


def symlink_hash(target: bytes) -> bytes:
    return H(b"cmod-symlink-v1\0" + u64(len(target)) + target)


def dir_hash(entries) -> bytes:
    h = b"cmod-dir-v1\0" + u64(len(entries))
    for name, child in sorted(entries):
        h += u64(len(name)) + name + child
    return H(h)


def store_path(kind: str, content: str, name: str, refs=()) -> str:
    h = b"cmod-store-path-v1\0" + kind.encode() + b"\0" + content.encode() + b"\0" + name.encode()
    for r in sorted(set(refs)):
        h += b"\0" + r.encode()
    return nix32(H(h)[:20]) + "-" + name


# --- Derivations and the build trace -------------------------------------------------------


def drv_path(drv: dict) -> str:
    """The `.drv` store path: kind `drv`, the file hash of the canonical encoding, named
    `<name>.drv`, referencing every input store path and input derivation."""
    refs = []
    for i in drv["inputs"]:
        f = i["from"]
        refs.append(f["path"] if "path" in f else f["drv"])
    return store_path("drv", text(file_hash(False, canonical_json(drv))), drv["name"] + ".drv", refs)


def resolve(drv: dict, realised) -> dict:
    """Replace every `{"drv","output"}` input by `{"path"}` of the realised output."""
    out = json.loads(json.dumps(drv))
    for i in out["inputs"]:
        f = i["from"]
        if "drv" in f:
            i["from"] = {"path": realised(f["drv"], f["output"])}
    return out


def trace_key(resolved: dict, sandbox: str) -> str:
    assert all("path" in i["from"] for i in resolved["inputs"]), "trace keys are for resolved derivations"
    return text(H(b"cmod-trace-v1\0" + sandbox.encode() + b"\0" + canonical_json(resolved)))


TOOLCHAIN = text(file_hash(False, b"toolchain"))
HELLO_SRC = store_path("source", text(file_hash(False, b"export module hello;\n")), "hello.cppm")


def bmi_drv() -> dict:
    """derivation.rs `sample()`: the BMI of `hello` (no host files: the field is omitted)."""
    return {
        "version": 2,
        "name": "hello-0.1.0-hello.pcm",
        "kind": "bmi",
        "toolchain": TOOLCHAIN,
        "tool": "c++",
        "args": ["-std=c++20", "-x", "c++-module", "--precompile", "src/hello/hello.cppm", "-o", "out/hello.pcm"],
        "env": {},
        "inputs": [{"at": "src/hello/hello.cppm", "from": {"path": HELLO_SRC}, "role": "source"}],
        "outputs": {"bmi": {"at": "out/hello.pcm", "module": "hello", "name": "hello-0.1.0-hello.pcm"}},
    }


def consumer_drv(bmi: str) -> dict:
    """derivation.rs `consumer()`: the object of `main`, reading `hello`'s BMI (an output of
    the derivation `bmi`, unresolved) through the module map."""
    d = bmi_drv()
    d["name"] = "hello-0.1.0-main.o"
    d["kind"] = "object"
    d["args"] = ["@modules.rsp", "-x", "c++", "-c", "src/hello/hello.cppm", "-o", "out/main.o"]
    d["inputs"].append({"at": "bmi/hello.pcm", "from": {"drv": bmi, "output": "bmi"}, "role": "bmi"})
    d["inputs"].sort(key=lambda i: i["at"].encode())
    d["outputs"] = {"obj": {"at": "out/main.o", "name": "hello-0.1.0-main.o"}}
    return d


def host_drv() -> dict:
    """derivation.rs `with_host_files()`: a link reading two files of the host."""
    d = bmi_drv()
    d.update(
        name="zip-0.1.0-zip",
        kind="link",
        args=["-fuse-ld=lld", "-o", "out/zip", "-lz"],
        host={
            "/usr/include/zlib.h": text(file_hash(False, b"zlib.h")),
            "/usr/lib/x86_64-linux-gnu/libz.so": text(file_hash(False, b"libz")),
        },
        outputs={"exe": {"at": "out/zip", "name": "zip-0.1.0-zip"}},
    )
    return d


def escapes_drv() -> dict:
    """derivation.rs `with_escapes()`: string escaping, key order of a non-empty `env`
    (bytes: upper case before lower case before non-ASCII), and an input with `sub`."""
    include = dir_hash([(b"include", dir_hash([(b"q.h", file_hash(False, b"#define Q 1\n"))]))])
    tree = store_path("source", text(include), "esc-0.1.0-src")
    src = store_path("source", text(file_hash(False, b"int q;\n")), "quote.cpp")
    return {
        "version": 2,
        "name": "esc-0.1.0-quote.o",
        "kind": "object",
        "toolchain": TOOLCHAIN,
        "tool": "c++",
        "args": [
            '-DQ="q"',
            "-DB=a\\b",
            "-DC=\t|\n|\r|\b|\f|\x00|\x01|\x1f|/",
            "-DU=\u00e9\u20ac\U0001f600",
            "-c",
            "src/esc/quote.cpp",
            "-o",
            "out/quote.o",
        ],
        "env": {"a": "2", "\u00e9": "x", "Z": "", "B": "1", "LC_ALL": "C"},
        "inputs": [
            {"at": "src/esc/include", "from": {"path": tree, "sub": "include"}, "role": "headers"},
            {"at": "src/esc/quote.cpp", "from": {"path": src}, "role": "source"},
        ],
        "outputs": {"obj": {"at": "out/quote.o", "name": "esc-0.1.0-quote.o"}},
    }


# --- Signatures ---------------------------------------------------------------------------


def path_fingerprint(path: str, content: str, size: int, refs=()) -> str:
    return f"cmod-path-sig-v1;{path};{content};{size};" + ",".join(sorted(refs))


def trace_fingerprint(key: bytes, sandbox: str, drv: str, outputs: dict) -> str:
    outs = ",".join(f"{n}={p}" for n, p in sorted(outputs.items()))
    return f"cmod-trace-sig-v1;{nix32(key)};{sandbox};{drv};{outs}"


def scan_fingerprint(key: bytes, result: dict) -> str:
    return f"cmod-scan-sig-v1;{text(key)};{text(H(canonical_json(result)))}"


# --- Evaluator and store keys ----------------------------------------------------------------


def scan_key(identity: str, rel: str, content: str, args) -> str:
    h = b"cmod-scan-v1\0" + identity.encode() + b"\0" + rel.encode() + b"\0" + content.encode()
    for a in args:
        h += b"\0" + a.encode()
    return text(H(h))


def shape_key(identity: str, rel: str, args, source: bytes) -> str:
    h = b"cmod-scan-shape-v1\0" + identity.encode() + b"\0" + rel.encode()
    for a in args:
        h += b"\0" + a.encode()
    lines = source.split(b"\n")
    continued = False
    for n, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        continues = line.endswith(b"\\")
        relevant = any(s in line for s in (b"#", b"%:", b"??=", b"import", b"module"))
        if continued or continues or relevant:
            h += b"\n" + u64(n) + line
        continued = continues
    h += u64(len(lines))
    return H(h).hex()


def toolchain_identity(version_output: str, stdlib: str, files, trees, closure) -> str:
    h = b"cmod-toolchain-v1\0" + version_output.encode() + b"\0" + stdlib.encode()
    for label, entries in (("file", files), ("tree", trees)):
        for path, digest in entries:
            h += f"\0{label}\0{path}\0{text(digest)}".encode()
    for c in closure:
        h += f"\0closure\0{c}".encode()
    return text(H(h))


def memo_key(fingerprint: bytes, parts) -> str:
    h = b"cmod-realise-memo-v1\0" + fingerprint
    for p in parts:
        h += u64(len(p.encode())) + p.encode()
    return text(H(h))


def frame(message: dict) -> str:
    """A `store serve` message frame: u32 little-endian length, then compact JSON."""
    body = canonical_json(message)
    return (struct.pack("<I", len(body)) + body).hex()


# --- The vectors -----------------------------------------------------------------------------

SHAPE_UNIT = (
    b"module;\r\n#include <vector>\n#define TWICE(x) \\\n  ((x) * 2)\nmodule m;\n"
    b"import n;\nint f() { return TWICE(1); }\nint g = 1 ??= 2;\n"
)


def compute() -> dict:
    v = {}
    v["base32.nix.sha256_empty"] = nix32(hashlib.sha256(b"").digest())
    v["base32.nix.seq20"] = nix32(bytes(range(20)))

    hello = file_hash(False, b"hello\n")
    v["content.file.empty"] = text(file_hash(False, b""))
    v["content.file.hello"] = text(hello)
    v["content.file.hello_exec"] = text(file_hash(True, b"hello\n"))
    v["content.symlink"] = text(symlink_hash(b"../x"))
    tree = dir_hash([(b"b.txt", hello), (b"a", dir_hash([])), (b"link", symlink_hash(b"b.txt"))])
    v["content.tree"] = text(tree)

    src = store_path("source", text(hello), "main.cpp")
    out = store_path("output", text(hello), "hello-0.1.0-main.o", [src])
    drv = store_path("drv", text(hello), "main.o.drv")
    v["store_path.source"] = src
    v["store_path.output_with_ref"] = out
    v["store_path.drv"] = drv

    v["signature.path"] = path_fingerprint(out, text(hello), 6, [src])
    v["signature.path.source"] = path_fingerprint(src, text(hello), 6)
    key = file_hash(False, b"key")
    v["signature.trace"] = trace_fingerprint(key, "full", drv, {"obj": out})
    v["signature.scan"] = scan_fingerprint(key, {"requires": ["b", "a"], "provides": ["m", True]})
    sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    v["key.public"] = "cache.example-1:" + base64.b64encode(pub).decode()
    v["key.secret"] = "cache.example-1:" + base64.b64encode(bytes(range(32)) + pub).decode()
    v["key.signature"] = "cache.example-1:" + base64.b64encode(sk.sign(v["signature.path.source"].encode())).decode()

    bmi = bmi_drv()
    v["derivation.bmi.canonical"] = canonical_json(bmi).decode()
    v["derivation.bmi.drv_path"] = drv_path(bmi)
    consumer = consumer_drv(drv_path(bmi))
    v["derivation.consumer.canonical"] = canonical_json(consumer).decode()
    v["derivation.consumer.drv_path"] = drv_path(consumer)
    pcm = store_path("output", text(file_hash(False, b"pcm")), "hello-0.1.0-hello.pcm")
    resolved = resolve(consumer, lambda d, o: pcm)
    v["derivation.consumer.resolved"] = canonical_json(resolved).decode()
    v["derivation.consumer.trace_key.full"] = trace_key(resolved, "full")
    v["derivation.consumer.trace_key.off"] = trace_key(resolved, "off")
    host = host_drv()
    v["derivation.host.canonical"] = canonical_json(host).decode()
    v["derivation.host.drv_path"] = drv_path(host)
    esc = escapes_drv()
    v["derivation.escapes.canonical"] = canonical_json(esc).decode()
    v["derivation.escapes.drv_path"] = drv_path(esc)
    # Characters JSON allows raw and cmod writes raw (invisible, so only their hash is kept
    # here): DEL, U+2028 and U+2029.
    v["canonical.unescaped"] = text(H(canonical_json({"del": "\x7f", "ls": "\u2028", "ps": "\u2029"})))

    v["scan.key"] = scan_key(
        TOOLCHAIN,
        "src/hello.cppm",
        text(file_hash(False, b"export module hello;\n")),
        ["-x", "c++-module", "-std=c++20", "-Isrc/hello/include", '-DGREETING="hi"'],
    )
    v["scan.shape"] = shape_key(TOOLCHAIN, "src/a.cpp", ["-x", "c++"], SHAPE_UNIT)
    v["toolchain.identity"] = toolchain_identity(
        "Debian clang version 19.1.7 (3)\nTarget: x86_64-pc-linux-gnu\nThread model: posix\n"
        "InstalledDir: /usr/lib/llvm-19/bin\n",
        "libc++",
        [
            ("/usr/lib/llvm-19/bin/clang", file_hash(True, b"clang")),
            ("/usr/lib/llvm-19/bin/ld.lld", file_hash(True, b"lld")),
        ],
        [
            ("/usr/lib/llvm-19/include/c++/v1", dir_hash([(b"vector", file_hash(False, b"#pragma once\n"))])),
            ("/usr/lib/llvm-19/lib/clang/19", dir_hash([])),
        ],
        ["/etc/ld.so.cache", "/usr/lib/llvm-19"],
    )
    v["memo.key"] = memo_key(file_hash(False, b"fingerprint"), ["full", "accept:", "app", "app-tests"])
    v["serve.frame.hello"] = frame({"op": "hello", "protocol": 1})
    v["serve.frame.hello_answer"] = frame({"protocol": 1, "store_format": "v1"})
    return v


def read_vectors(path: str) -> dict:
    """`<name> <value>` lines; `#` starts a comment line; the value is the rest of the line
    after the blanks that follow the name."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f.read().split("\n"), 1):
            if not line or line.startswith("#"):
                continue
            name, _, value = line.partition(" ")
            if name in out:
                raise SystemExit(f"{path}:{n}: vector `{name}` is defined twice")
            out[name] = value.lstrip(" ")
    return out


def main() -> int:
    want = read_vectors(VECTORS)
    got = compute()
    bad = 0
    for name in sorted(set(want) | set(got)):
        if name not in got:
            print(f"BAD  {name}: in vectors.txt but not re-derived here")
            bad += 1
        elif name not in want:
            print(f"BAD  {name}: re-derived here but missing from vectors.txt: {got[name]}")
            bad += 1
        elif got[name] != want[name]:
            print(f"BAD  {name}: {got[name]}\n     (want {want[name]})")
            bad += 1
        else:
            print(f"OK   {name}: {got[name]}")
    print(f"{len(got) - bad} of {len(set(want) | set(got))} vectors agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
