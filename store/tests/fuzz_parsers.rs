//! Property tests over the parsers of untrusted bytes in `cmod-store`: build-trace
//! entries and path metadata with their signatures, transfer archives (the tar + zstd
//! unpacker, mutated at the tar level and at the compressed level), and ssh frames.
//! Each must give a value or its typed error — never a panic — and an unpacked archive
//! must have written nothing outside its destination.
//!
//! `CMOD_FUZZ_CASES=N` sets the inputs per parser (default 2,000); `scripts/fuzz-parsers`
//! runs a million each.

#[path = "../../schema/tests/fuzz/mod.rs"]
mod fuzz;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cmod_schema::cache::{parse_versioned, NarInfo};
use cmod_store::archive::{self, ArchiveError};
use cmod_store::sign::{path_fingerprint_of, trace_entry_fingerprint, TrustedKeys};
use cmod_store::trace::TraceEntry;
use cmod_store::transfer::Trust;
use fuzz::{hostile, seeds, JSON_CLOSE, JSON_OPEN, JSON_TOKENS};

/// The key that signed the seeds (`seed-1`).
const SEED_KEY: &str = "seed-1:7yDj5E8++0yM6Kf5MmPKRsJqFgGCqbJeD0iPXWR0rvo=";

/// Tokens that stress tar headers and zstd frames.
const BINARY_TOKENS: &[&str] = &[
    "p/",
    "p/../",
    "/etc/passwd",
    "..",
    "p/a/",
    "././@LongLink",
    "ustar\u{0}00",
    "ustar  \u{0}",
    "0000644\u{0}",
    "0000755\u{0}",
    "77777777777",
    "\u{ff}\u{ff}\u{ff}\u{ff}",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "L",
    "K",
    "x",
    "g",
    "\u{28}\u{b5}\u{2f}\u{fd}",
    "\u{0}\u{0}\u{0}\u{0}",
];

fn trust() -> Trust {
    Trust {
        keys: TrustedKeys::parse([SEED_KEY]).expect("the seed key"),
        require_sigs: true,
    }
}

#[test]
fn trace_entries_and_their_signatures() {
    let trust = trust();
    let strategy = hostile(seeds("trace-"), JSON_TOKENS, JSON_OPEN, JSON_CLOSE);
    fuzz::run("trace entry (trace/<key>.json)", strategy, |bytes| {
        let Ok(t) = parse_versioned::<TraceEntry>(bytes) else {
            return;
        };
        let again = serde_json::to_vec(&t).expect("serialises");
        assert_eq!(parse_versioned::<TraceEntry>(&again).expect("re-parses"), t);
        let _ = trace_entry_fingerprint(&t);
        let _ = trust.trace_verdict("fuzz", &t);
    });
}

#[test]
fn transfer_metadata_signatures() {
    let trust = trust();
    let strategy = hostile(seeds("nar-info-"), JSON_TOKENS, JSON_OPEN, JSON_CLOSE);
    fuzz::run("transfer metadata + signature check", strategy, |bytes| {
        if let Ok(info) = parse_versioned::<NarInfo>(bytes) {
            let _ = path_fingerprint_of(&info);
            let _ = trust.check_path("fuzz", &info);
        }
    });
}

/// Small trees packed as the store packs them: (uncompressed tar, compressed archive).
fn archive_seeds(tmp: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    use std::os::unix::fs::PermissionsExt;
    let mut tars = Vec::new();
    let mut zsts = Vec::new();
    for (i, shape) in ["file", "tree", "links"].iter().enumerate() {
        let root = tmp.join(format!("seed-{i}"));
        match *shape {
            "file" => std::fs::write(&root, b"int main() { return 0; }\n").unwrap(),
            "tree" => {
                std::fs::create_dir_all(root.join("lib/deep/er")).unwrap();
                std::fs::write(root.join("lib/x.o"), vec![7u8; 3000]).unwrap();
                std::fs::write(root.join("lib/deep/er/y"), b"y").unwrap();
                std::fs::write(root.join("run"), b"#!/bin/sh\n").unwrap();
                std::fs::set_permissions(root.join("run"), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
                let long = "n".repeat(150);
                std::fs::write(root.join("lib").join(long), b"long name").unwrap();
            }
            _ => {
                std::fs::create_dir_all(root.join("a/b")).unwrap();
                std::fs::write(root.join("a/b/t"), b"target").unwrap();
                std::os::unix::fs::symlink("b/t", root.join("a/l")).unwrap();
                std::os::unix::fs::symlink("../a/b", root.join("a/b/up")).unwrap();
            }
        }
        let zst = archive::pack(&root, Vec::new(), 3, 1).expect("pack a seed");
        let tar = zstd::decode_all(&zst[..]).expect("decompress a seed");
        tars.push(tar);
        zsts.push(zst);
    }
    (tars, zsts)
}

/// How unpacking went: [unpacked, refused as hostile, corrupt, I/O errors].
#[derive(Default)]
struct Outcomes([AtomicU64; 4]);

impl Outcomes {
    fn show(&self) -> String {
        let [a, b, c, d] = self.0.each_ref().map(|n| n.load(Ordering::Relaxed));
        format!("{a} unpacked, {b} refused as hostile, {c} corrupt, {d} I/O errors")
    }
}

/// Unpack `compressed` below a fresh directory; nothing may appear beside the
/// destination, and any error is a typed one.
fn unpack_checked(scratch: &Path, outcomes: &Outcomes, compressed: &[u8]) {
    let n: u64 = outcomes.0.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    let box_dir = scratch.join(format!("u{n}"));
    std::fs::create_dir(&box_dir).unwrap();
    let dest = box_dir.join("d");
    let r = archive::unpack(compressed, &dest, 1 << 20);
    let beside: Vec<String> = std::fs::read_dir(&box_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "d")
        .collect();
    assert!(
        beside.is_empty(),
        "written outside the destination: {beside:?}"
    );
    let i = match r {
        Ok(u) => {
            assert!(u.size <= 1 << 20);
            0
        }
        Err(ArchiveError::Hostile { .. }) => 1,
        Err(ArchiveError::Corrupt(_)) => 2,
        Err(ArchiveError::Io(_)) => 3,
    };
    outcomes.0[i].fetch_add(1, Ordering::Relaxed);
    make_writable(&box_dir);
    std::fs::remove_dir_all(&box_dir).unwrap();
}

fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.is_dir() {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
                make_writable(&p);
            }
        }
    }
}

/// Recompute the checksum of every 512-byte block that looks like a tar header.
fn fix_checksums(tar: &mut [u8]) {
    for block in tar.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(text.as_bytes());
    }
}

/// A scratch directory on tmpfs when there is one (the long run unpacks a million times).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

#[test]
fn transfer_archives_mutated_as_tar() {
    let t = scratch();
    let (tars, _) = archive_seeds(t.path());
    let outcomes = Outcomes::default();
    let strategy = hostile(tars, BINARY_TOKENS, &["p/"], &[""]);
    fuzz::run("transfer archive (tar level)", strategy, |tar| {
        let mut tar = tar.to_vec();
        // Half the inputs get valid header checksums, so mutations reach the member
        // checks rather than stopping at the checksum.
        if tar.len() % 2 == 0 {
            fix_checksums(&mut tar);
        }
        let compressed = zstd::encode_all(&tar[..], 1).expect("compress");
        unpack_checked(t.path(), &outcomes, &compressed);
    });
    eprintln!("  tar level: {}", outcomes.show());
}

/// Member names, link targets and types an attacker would try.
const NAMES: &[&str] = &[
    "p",
    "p/",
    "p/a",
    "p/a/",
    "p/a/b",
    "p/b",
    "p/../x",
    "/abs",
    "/",
    "p/./a",
    "p//a",
    "q/a",
    "p/a/../../..",
    "",
    "p/a/b/c/d",
    "p/l",
    "p/l/x",
    ".",
    "..",
    "p/\0x",
    "./p",
];
const TARGETS: &[&str] = &[
    "a",
    "b",
    "../a",
    "../../x",
    "/etc",
    "",
    "b/../../..",
    "l/../..",
    "p",
    ".",
    "a/b",
    "l",
];
const KINDS: &[u8] = b"0502134567LKxgV";

/// A tar stream built member by member from names, types, targets and sizes drawn from
/// the lists above (or random), each header with a valid checksum: the inputs reach the
/// unpacker's member checks.
fn members() -> proptest::strategy::BoxedStrategy<Vec<u8>> {
    use proptest::prelude::*;
    let name = prop_oneof![
        4 => (0..NAMES.len()).prop_map(|i| NAMES[i].as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..120),
    ];
    let member = (
        name,
        0..KINDS.len(),
        0..TARGETS.len(),
        0u64..2000,
        any::<u32>(),
    );
    (proptest::collection::vec(member, 0..8), any::<bool>())
        .prop_map(|(ms, end)| {
            let mut out = Vec::new();
            for (name, kind, target, size, mode) in ms {
                let mut h = tar::Header::new_gnu();
                let kind = KINDS[kind];
                let size = if kind == b'0' || kind == b'L' {
                    size
                } else {
                    0
                };
                let n = name.len().min(100);
                h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
                let t = TARGETS[target].as_bytes();
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
                h.set_entry_type(tar::EntryType::new(kind));
                h.set_mode(mode & 0o7777);
                h.set_size(size);
                h.set_cksum();
                out.extend_from_slice(h.as_bytes());
                out.extend(std::iter::repeat_n(b'x', size as usize));
                out.extend(std::iter::repeat_n(0u8, (512 - size as usize % 512) % 512));
            }
            if end {
                out.extend_from_slice(&[0u8; 1024]);
            }
            out
        })
        .boxed()
}

#[test]
fn transfer_archives_built_member_by_member() {
    let t = scratch();
    let outcomes = Outcomes::default();
    fuzz::run("transfer archive (member level)", members(), |tar| {
        let compressed = zstd::encode_all(tar, 1).expect("compress");
        unpack_checked(t.path(), &outcomes, &compressed);
    });
    eprintln!("  member level: {}", outcomes.show());
}

#[test]
fn transfer_archives_mutated_compressed() {
    let t = scratch();
    let (_, zsts) = archive_seeds(t.path());
    let outcomes = Outcomes::default();
    let strategy = hostile(zsts, BINARY_TOKENS, &["\u{28}\u{b5}\u{2f}\u{fd}"], &[""]);
    fuzz::run("transfer archive (zstd level)", strategy, |bytes| {
        unpack_checked(t.path(), &outcomes, bytes);
    });
    eprintln!("  zstd level: {}", outcomes.show());
}

#[test]
fn ssh_frames() {
    let mut framed = Vec::new();
    for msg in seeds("trace-").iter().chain(seeds("nar-info-").iter()) {
        framed.push([&(msg.len() as u32).to_le_bytes()[..], msg].concat());
    }
    let strategy = hostile(framed, JSON_TOKENS, JSON_OPEN, JSON_CLOSE);
    fuzz::run("ssh frames (read_msg, FrameReader)", strategy, |bytes| {
        let mut r = bytes;
        while let Ok(Some(_)) = cmod_store::serve::read_msg(&mut r) {}
        let mut r = bytes;
        let mut frames = cmod_store::serve::FrameReader::new(&mut r);
        let _ = std::io::copy(&mut frames, &mut std::io::sink());
    });
}
