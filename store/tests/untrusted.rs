//! Untrusted bytes: everything a binary cache can do wrong is refused with a clear
//! reason, and nothing is written to the receiving store (no valid path, no leftover
//! contents, no temporary directory).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cmod_schema::cache::NarInfo;
use cmod_schema::{PathKind, StorePath};
use cmod_store::cache::BinaryCache;
use cmod_store::content::Candidates;
use cmod_store::copy::{copy_from, copy_to};
use cmod_store::registry::Registration;
use cmod_store::sign::{SecretKey, TrustedKeys};
use cmod_store::transfer::{CopyError, Trust};
use cmod_store::Store;

struct Fixture {
    t: tempfile::TempDir,
    key: SecretKey,
    path: StorePath,
    dep: StorePath,
}

fn add_tree(s: &Store, name: &str, build: impl Fn(&Path)) -> StorePath {
    let tmp = s.temp_path("t");
    std::fs::create_dir(&tmp).unwrap();
    build(&tmp);
    let reg = Registration {
        kind: PathKind::Output,
        name,
        deriver: None,
        sandbox: Some("full"),
        landlock_abi: None,
        candidates: &cmod_store::content::candidates(s.valid_paths().unwrap().iter()),
    };
    s.register(&tmp, &reg).unwrap().path
}

/// A store with `dep` and `top` (which refers to `dep`), both signed, copied to `cache`.
fn fixture() -> Fixture {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(&t.path().join("a")).unwrap();
    let dep = add_tree(&s, "dep", |d| {
        std::fs::write(d.join("lib.a"), vec![1u8; 10]).unwrap();
    });
    let dep_name = dep.to_string();
    let top = add_tree(&s, "top", move |d| {
        std::fs::create_dir(d.join("bin")).unwrap();
        std::fs::write(
            d.join("bin/tool"),
            format!("uses /cmod/store/{dep_name}/lib.a"),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/tool", d.join("link")).unwrap();
    });
    assert_eq!(
        s.path_info(&top).unwrap().references,
        BTreeSet::from([dep.clone()])
    );
    let key = SecretKey::from_seed("cache-1", [3; 32]).unwrap();
    for p in [&dep, &top] {
        let mut info = s.path_info(p).unwrap();
        key.sign_path(&mut info);
        s.write_path_info(&info).unwrap();
    }
    let cache = BinaryCache::open(&format!("file://{}", t.path().join("cache").display())).unwrap();
    let r = copy_to(&s, &cache, std::slice::from_ref(&top), &[], 2).unwrap();
    assert_eq!((r.closure, r.copied), (2, 2));
    Fixture {
        t,
        key,
        path: top,
        dep,
    }
}

impl Fixture {
    fn cache_dir(&self) -> PathBuf {
        self.t.path().join("cache")
    }

    fn info_file(&self, p: &StorePath) -> PathBuf {
        self.cache_dir()
            .join(format!("info/{}.json", p.hash_part()))
    }

    fn info(&self, p: &StorePath) -> NarInfo {
        serde_json::from_slice(&std::fs::read(self.info_file(p)).unwrap()).unwrap()
    }

    fn nar(&self, p: &StorePath) -> PathBuf {
        self.cache_dir().join(self.info(p).archive.file)
    }

    fn edit_info(&self, p: &StorePath, f: impl Fn(&mut serde_json::Value)) {
        let file = self.info_file(p);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    fn trust(&self) -> Trust {
        Trust {
            keys: TrustedKeys::new(vec![self.key.public()]),
            require_sigs: true,
        }
    }

    /// Copy `top` into a fresh store; return the error and check nothing was written.
    fn refused_with(&self, trust: &Trust) -> CopyError {
        self.refused_into(trust).0
    }

    /// [`Fixture::refused_with`], also returning the receiving store's valid paths.
    fn refused_into(&self, trust: &Trust) -> (CopyError, Vec<StorePath>) {
        let root = self.t.path().join(format!("b-{}", rand_suffix()));
        let b = Store::open(&root).unwrap();
        let cache = BinaryCache::open(&format!("file://{}", self.cache_dir().display())).unwrap();
        let e = copy_from(&b, &cache, std::slice::from_ref(&self.path), trust, 2).unwrap_err();
        let valid = b.valid_paths().unwrap();
        // The dependency may have arrived intact before `top` was refused; `top` never.
        assert!(!valid.contains(&self.path), "{e}");
        for d in ["v1/tmp", "v1/store"] {
            let left: Vec<String> = std::fs::read_dir(root.join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !valid.iter().any(|v| v.to_string() == *n))
                .collect();
            assert!(left.is_empty(), "{d} has leftovers {left:?} after: {e}");
        }
        (e, valid)
    }

    /// A copy refused for its signatures (exit 3) before anything was fetched: not even
    /// the dependency, whose own signature is good, arrives.
    fn refused_before_fetching(&self, trust: &Trust) -> String {
        let (e, valid) = self.refused_into(trust);
        assert_eq!(e.exit_class().code(), 3, "{e}");
        assert!(
            valid.is_empty(),
            "fetched {valid:?} although a signature failed: {e}"
        );
        e.to_string()
    }

    fn refused(&self) -> String {
        let e = self.refused_with(&self.trust());
        assert_eq!(e.exit_class().code(), 3, "{e}");
        e.to_string()
    }
}

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn a_good_cache_copies_and_verifies() {
    let f = fixture();
    let b = Store::open(&f.t.path().join("good")).unwrap();
    let cache = BinaryCache::open(&format!("file://{}", f.cache_dir().display())).unwrap();
    let r = copy_from(&b, &cache, std::slice::from_ref(&f.path), &f.trust(), 2).unwrap();
    assert_eq!(r.copied, 2);
    assert!(b.is_valid(&f.path) && b.is_valid(&f.dep));
    assert!(b.verify(true).unwrap().damaged.is_empty());
    assert_eq!(b.path_info(&f.path).unwrap().signatures.len(), 1);
}

#[test]
fn unsigned_wrong_key_and_bad_signatures_are_refused() {
    let f = fixture();
    f.edit_info(&f.path, |v| v["signatures"] = serde_json::json!([]));
    let e = f.refused_before_fetching(&f.trust());
    assert!(e.contains("is not trusted: it is not signed"), "{e}");
    assert!(
        e.contains(&f.path.to_string()) && e.contains("file://"),
        "{e}"
    );

    let f = fixture();
    let other = SecretKey::from_seed("other-1", [4; 32]).unwrap();
    let e = f.refused_before_fetching(&Trust {
        keys: TrustedKeys::new(vec![other.public()]),
        require_sigs: true,
    });
    assert!(
        e.contains("no signature by a trusted key (signed by: cache-1)"),
        "{e}"
    );

    let f = fixture();
    let impostor = SecretKey::from_seed("cache-1", [5; 32]).unwrap();
    let info = f.info(&f.path);
    let fp = cmod_store::sign::path_fingerprint_of(&info);
    f.edit_info(&f.path, |v| {
        v["signatures"] = serde_json::json!([impostor.sign(&fp)])
    });
    let e = f.refused_before_fetching(&f.trust());
    assert!(
        e.contains("the signature by `cache-1` does not verify"),
        "{e}"
    );

    // Metadata altered after signing (a different size) no longer verifies.
    let f = fixture();
    f.edit_info(&f.path, |v| v["size"] = serde_json::json!(1));
    let e = f.refused_before_fetching(&f.trust());
    assert!(e.contains("does not verify"), "{e}");
}

#[test]
fn corrupt_truncated_and_substituted_archives_are_refused() {
    let f = fixture();
    let nar = f.nar(&f.path);
    let mut bytes = std::fs::read(&nar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&nar, &bytes).unwrap();
    let e = f.refused();
    assert!(e.contains("was refused"), "{e}");

    let f = fixture();
    let nar = f.nar(&f.path);
    let bytes = std::fs::read(&nar).unwrap();
    std::fs::write(&nar, &bytes[..bytes.len() - 7]).unwrap();
    let e = f.refused();
    assert!(
        e.contains("corrupt or truncated") || e.contains("the archive has"),
        "{e}"
    );

    // A well-formed archive of other contents: its stream hash is announced honestly,
    // but the unpacked tree does not hash to the signed content hash.
    let f = fixture();
    let dep_info = f.info(&f.dep);
    f.edit_info(&f.path, |v| {
        v["archive"] = serde_json::to_value(&dep_info.archive).unwrap()
    });
    let e = f.refused();
    assert!(e.contains("but its metadata says"), "{e}");
}

#[test]
fn newer_formats_and_unknown_fields_are_refused() {
    let f = fixture();
    f.edit_info(&f.path, |v| v["version"] = serde_json::json!(2));
    let e = f.refused();
    assert!(
        e.contains("format version 2, newer than this cmod understands (1)"),
        "{e}"
    );

    let f = fixture();
    f.edit_info(&f.path, |v| v["mirror"] = serde_json::json!("http://evil"));
    let e = f.refused();
    assert!(e.contains("unknown field `mirror`"), "{e}");

    let f = fixture();
    std::fs::write(
        f.cache_dir().join("cmod-cache-info"),
        r#"{"version":9,"store_format":"v9"}"#,
    )
    .unwrap();
    let cache = BinaryCache::open(&format!("file://{}", f.cache_dir().display())).unwrap();
    let e = cache.cache_info().unwrap_err().to_string();
    assert!(e.contains("newer than this cmod understands"), "{e}");
    // A copy from it stops at the cache's description, before any path is read.
    let e = f.refused();
    assert!(
        e.contains("cmod-cache-info") && e.contains("newer than this cmod understands"),
        "{e}"
    );

    // Same version, another store format: refused naming the format.
    let f = fixture();
    std::fs::write(
        f.cache_dir().join("cmod-cache-info"),
        r#"{"version":1,"store_format":"v2","priority":50}"#,
    )
    .unwrap();
    let e = f.refused();
    assert!(e.contains("store format `v2`"), "{e}");
}

/// A tar.zst from raw members (name, type, data or link target).
fn raw(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
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
    zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap()
}

/// Every file or directory named `name` below `dir` (links are not followed).
fn entries_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == name) {
            found.push(p.clone());
        }
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            found.extend(entries_named(&p, name));
        }
    }
    found
}

/// Hostile archives and the reason each must be refused for. The members that try to
/// write outside the tree aim at a file named `escaped` below `t` (the test's directory):
/// `p/../../escaped` from the receiving store's `v1/tmp/recv-*`, and an absolute path.
fn hostile_archives(t: &Path) -> Vec<(Vec<u8>, &'static str)> {
    use tar::EntryType::*;
    let d: &[u8] = b"";
    let absolute = format!("{}/escaped", t.display());
    assert!(
        absolute.len() < 100,
        "a tar name holds 100 bytes: {absolute}"
    );
    vec![
        (
            raw(&[("p", Directory, d), ("p/../../escaped", Regular, b"x")]),
            "`..` path component",
        ),
        (raw(&[(absolute.as_str(), Regular, b"x")]), "absolute path"),
        (
            raw(&[("p", Directory, d), ("p/l", Symlink, b"../../../etc")]),
            "escapes the store path",
        ),
        (
            raw(&[("p", Directory, d), ("p/l", Symlink, b"/etc/passwd")]),
            "symlink to the absolute path",
        ),
        (
            raw(&[("p", Directory, d), ("p/h", Link, b"/etc/passwd")]),
            "is a hard link",
        ),
        (
            raw(&[("p", Directory, d), ("p/null", Char, d)]),
            "is a device node",
        ),
        (
            raw(&[("p", Directory, d), ("p/sda", Block, d)]),
            "is a device node",
        ),
        (
            raw(&[("p", Directory, d), ("p/pipe", Fifo, d)]),
            "is a FIFO",
        ),
        (
            raw(&[
                ("p", Directory, d),
                ("p/l", Symlink, b"."),
                ("p/l/bin", Regular, b"x"),
            ]),
            "parent is not a directory",
        ),
        (
            raw(&[("p", Directory, d), ("p/big", Regular, &[0u8; 60_000])]),
            "larger than the",
        ),
    ]
}

#[test]
fn every_hostile_archive_is_refused_before_registration() {
    let cases = hostile_archives(Path::new("/")).len();
    for i in 0..cases {
        let f = fixture();
        let (archive, want) = hostile_archives(f.t.path()).swap_remove(i);
        std::fs::write(f.nar(&f.path), &archive).unwrap();
        let e = f.refused();
        let escaped = entries_named(f.t.path(), "escaped");
        assert!(
            escaped.is_empty(),
            "the archive refused for {want:?} wrote {escaped:?}: {e}"
        );
        assert!(e.contains(want), "expected {want:?} in: {e}");
    }
    let _ = Candidates::new();
}
