//! Tests of the transfer archive: determinism, round trips, and every hostile archive.

use super::*;
use crate::content::{hash_path, Candidates};

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("lib/deep")).unwrap();
    std::fs::write(root.join("lib/a.o"), b"object").unwrap();
    std::fs::write(root.join("bin"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("lib/deep/x"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("../bin", root.join("lib/link")).unwrap();
    let long = "n".repeat(150);
    std::fs::write(root.join("lib").join(&long), b"long name").unwrap();
}

#[test]
fn packing_is_deterministic_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    tree(&a);
    tree(&b);
    // Different mtimes and permissions beyond the executable bit do not matter.
    std::fs::set_permissions(b.join("lib/a.o"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let pa = pack(&a, Vec::new(), 3, 1).unwrap();
    let pb = pack(&b, Vec::new(), 3, 2).unwrap();
    assert_eq!(pa, pb, "same tree, same bytes, whatever the thread count");
    let out = t.path().join("out");
    let u = unpack(&pa[..], &out, u64::MAX).unwrap();
    let want = hash_path(&a, &Candidates::new()).unwrap();
    let got = hash_path(&u.root, &Candidates::new()).unwrap();
    assert_eq!(got.hash, want.hash);
    assert_eq!(u.size, want.size);
    // A single file works too.
    let single = pack(&a.join("bin"), Vec::new(), 3, 1).unwrap();
    let u = unpack(&single[..], &t.path().join("single"), 100).unwrap();
    assert_eq!(std::fs::read(&u.root).unwrap(), b"#!/bin/sh\n");
}

/// Build an archive from raw members: (name, type, data or link target).
fn raw(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    let tar = b.into_inner().unwrap();
    zstd::encode_all(&tar[..], 3).unwrap()
}

fn refused(archive: &[u8], max: u64) -> String {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("d");
    let e = unpack(archive, &dest, max).unwrap_err().to_string();
    // Nothing was written outside the destination.
    let outside: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "d")
        .collect();
    assert!(outside.is_empty(), "{outside:?}: {e}");
    assert!(!t.path().join("escaped").exists());
    e
}

#[test]
fn every_hostile_archive_is_refused() {
    use tar::EntryType::*;
    let dir: &[u8] = b"";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw(&[("p", Directory, dir), ("p/../escaped", Regular, b"x")]),
            "`..` path component",
        ),
        (raw(&[("/etc/escaped", Regular, b"x")]), "absolute path"),
        (raw(&[("q", Regular, b"x")]), "outside the archive's root"),
        (
            raw(&[("p", Directory, dir), ("p/l", Symlink, b"../../escaped")]),
            "escapes the store path",
        ),
        (
            raw(&[("p", Directory, dir), ("p/l", Symlink, b"/etc/passwd")]),
            "absolute path `/etc/passwd`",
        ),
        (raw(&[("p", Symlink, b"x")]), "link out of the store"),
        (
            raw(&[("p", Directory, dir), ("p/h", Link, b"p/x")]),
            "is a hard link",
        ),
        (
            raw(&[("p", Directory, dir), ("p/dev", Char, dir)]),
            "device node",
        ),
        (
            raw(&[("p", Directory, dir), ("p/dev", Block, dir)]),
            "device node",
        ),
        (
            raw(&[("p", Directory, dir), ("p/fifo", Fifo, dir)]),
            "is a FIFO",
        ),
        (
            raw(&[
                ("p", Directory, dir),
                ("p/a", Regular, b"1"),
                ("p/a", Regular, b"2"),
            ]),
            "appears twice",
        ),
        (
            raw(&[
                ("p", Directory, dir),
                ("p/l", Symlink, b"."),
                ("p/l/x", Regular, b"x"),
            ]),
            "parent is not a directory",
        ),
        (
            raw(&[("p/x", Regular, b"x")]),
            "before (or without) its parent",
        ),
        (
            raw(&[("p", Directory, dir), ("p/./x", Regular, b"x")]),
            "`.` path component",
        ),
        // Each link looks inside on its own; `t` resolves through `a/s` to the store dir.
        (
            raw(&[
                ("p", Directory, dir),
                ("p/a", Directory, dir),
                ("p/a/s", Symlink, b".."),
                ("p/t", Symlink, b"a/s/.."),
            ]),
            "through the link `a/s`",
        ),
        // The same with the link it goes through coming later in the archive.
        (
            raw(&[
                ("p", Directory, dir),
                ("p/a", Directory, dir),
                ("p/t", Symlink, b"a/s/../../etc"),
                ("p/a/s", Symlink, b"."),
            ]),
            "escapes the store path",
        ),
        (
            raw(&[
                ("p", Directory, dir),
                ("p/l1", Symlink, b"l2"),
                ("p/l2", Symlink, b"l1"),
            ]),
            "a loop",
        ),
    ];
    for (archive, want) in cases {
        let e = refused(&archive, 1000);
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
}

#[test]
fn oversize_truncated_and_corrupt_archives_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a");
    tree(&a);
    let good = pack(&a, Vec::new(), 3, 1).unwrap();
    let e = refused(&good, 10);
    assert!(e.contains("larger than the 10 bytes"), "{e}");
    let e = refused(&good[..good.len() / 2], u64::MAX);
    assert!(e.contains("corrupt or truncated"), "{e}");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    let e = refused(&bad, u64::MAX);
    assert!(e.contains("corrupt or truncated"), "{e}");
    let e = refused(b"not zstd at all", u64::MAX);
    assert!(e.contains("corrupt or truncated"), "{e}");
}
