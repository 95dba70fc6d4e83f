# Independent derivation of the golden root digest for reapi/src/merkle.rs's test:
# hashlib for SHA-256 and a hand-written protobuf encoder (no protobuf library), following
# remote_execution.proto's field numbers. Fields are emitted in field-number order, default
# values (false, 0) omitted, as proto3's canonical encoding does.
#
# Usage: python3 merkle_golden.py [RUST_FILE]; with RUST_FILE (reapi/src/merkle.rs, as
# scripts/check-golden passes), fails unless the file carries both digests.
import hashlib
import sys

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def ld(field, payload):  # length-delimited field
    return varint(field << 3 | 2) + varint(len(payload)) + payload

def vint(field, n):
    return varint(field << 3 | 0) + varint(n) if n else b""

def digest_msg(h, size):
    return ld(1, h.encode()) + vint(2, size)

def blob(content):
    return hashlib.sha256(content).hexdigest(), len(content)

def file_node(name, content, exe):
    h, s = blob(content)
    return ld(1, name.encode()) + ld(2, digest_msg(h, s)) + vint(4, 1 if exe else 0)

def dir_node(name, enc):
    h, s = blob(enc)
    return ld(1, name.encode()) + ld(2, digest_msg(h, s))

def directory(files, dirs, links):
    key = lambda t: t[0].encode()  # byte order of the UTF-8 names
    out = b""
    for name, content, exe in sorted(files, key=key):
        out += ld(1, file_node(name, content, exe))
    for name, enc in sorted(dirs, key=key):
        out += ld(2, dir_node(name, enc))
    for name, target in sorted(links, key=key):
        out += ld(3, ld(1, name.encode()) + ld(2, target.encode()))
    return out

sub = directory([("z", b"z", False), ("C", b"upper", False), ("\u00e9t\u00e9", b"summer", False)], [], [])
empty = directory([], [], [])
root = directory(
    [("b.txt", b"bee\n", False), ("a.sh", b"#!/bin/sh\necho a\n", True), ("B", b"", False)],
    [("sub", sub), ("empty", empty)],
    [("link", "b.txt")],
)
golden = {"sub": "%s/%d" % blob(sub), "root": "%s/%d" % blob(root)}
for name, value in golden.items():
    print(name, value)
if len(sys.argv) > 1:
    text = open(sys.argv[1], encoding="utf-8").read()
    missing = [n for n, v in golden.items() if '"%s"' % v not in text]
    if missing:
        sys.exit("%s lacks the golden %s digest(s)" % (sys.argv[1], ", ".join(missing)))
    print("merkle golden digests: ok")
