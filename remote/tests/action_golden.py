# Independent derivation of the golden Action digest in remote/src/action.rs's test:
# hashlib for SHA-256 and a hand-written protobuf encoder (no protobuf library), following
# remote_execution.proto's field numbers (Command: arguments 1, environment_variables 2,
# platform 5, output_paths 7; Action: command_digest 1, input_root_digest 2, platform 10),
# fields in field-number order, defaults omitted, as proto3's canonical encoding does.
#
# The step: `clang++-19 -c src/m.cpp -o out/m.o` with LANG=C, in the `full` sandbox, on
# x86_64 Linux, toolchain identity blake3:0…0, reading one source file; its input root holds
# the source's store path under store/, the resolved derivation at .cmod/derivation.json and
# the (empty) module closure at .cmod/modules.json.
#
# Usage: python3 action_golden.py [RUST_FILE]; with RUST_FILE (remote/src/action.rs, as
# scripts/check-golden passes), fails unless the file carries the digest.
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

def ld(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(field << 3 | 2) + varint(len(payload)) + payload

def vint(field, n):
    return varint(field << 3 | 0) + varint(n) if n else b""

def blob(content):
    return hashlib.sha256(content).hexdigest(), len(content)

def digest_msg(content):
    h, s = blob(content)
    return ld(1, h) + vint(2, s)

def directory(files=(), dirs=()):
    out = b""
    for name, content in sorted(files, key=lambda t: t[0].encode()):
        out += ld(1, ld(1, name) + ld(2, digest_msg(content)))
    for name, enc in sorted(dirs, key=lambda t: t[0].encode()):
        out += ld(2, ld(1, name) + ld(2, digest_msg(enc)))
    return out

TOOLCHAIN = "blake3:" + "0" * 52
# The source's store path: its hash is the store-path hash, frozen by schema/golden.
SOURCE_PATH = "bvq1lkah43wi9g2l0bj0l7ynx2sa0jqc-m.cpp"
DERIVATION = ('{"args":["-c","src/m.cpp","-o","out/m.o"],"env":{"LANG":"C"},"inputs":[{"at":"src/m.cpp",'
              '"from":{"path":"%s"},"role":"source"}],"kind":"object","name":"m.o","outputs":{"obj":'
              '{"at":"out/m.o","name":"m.o"}},"tool":"c++","toolchain":"%s","version":2}') % (SOURCE_PATH, TOOLCHAIN)

def prop(name, value):
    return ld(1, ld(1, name) + ld(2, value))

platform = prop("ISA", "x86_64") + prop("OSFamily", "linux") + prop("cmod-sandbox", "full") + prop("cmod-toolchain", TOOLCHAIN)
command = b"".join(ld(1, a) for a in ["/usr/bin/clang++-19", "-c", "src/m.cpp", "-o", "out/m.o"])
command += ld(2, ld(1, "LANG") + ld(2, "C")) + ld(5, platform) + ld(7, "out/m.o")
root = directory(dirs=[
    ("store", directory(files=[(SOURCE_PATH, b"int f() { return 1; }\n")])),
    (".cmod", directory(files=[("derivation.json", DERIVATION.encode()), ("modules.json", b"[]")])),
])
action = ld(1, digest_msg(command)) + ld(2, digest_msg(root)) + ld(10, platform)
golden = "%s/%d" % blob(action)
print("action", golden)
if len(sys.argv) > 1:
    text = open(sys.argv[1], encoding="utf-8").read()
    if '"%s"' % golden not in text:
        sys.exit("%s lacks the golden Action digest %s" % (sys.argv[1], golden))
    print("action golden digest: ok")
