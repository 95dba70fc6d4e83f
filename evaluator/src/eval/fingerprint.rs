//! The evaluation fingerprint: a hash of everything derivation emission reads — the
//! evaluator's version, the profile, the toolchain identity, every package's location,
//! manifest, dependencies and targets, every unit with its content hash, scan result,
//! headers (package and system) and flags, every precompiled header, and every system
//! library with its files. Equal fingerprints mean identical derivations, which is what
//! lets a no-op realise skip emitting them.

use cmod_schema::ContentHash;

use crate::flags::PkgPath;
use crate::scan::{HeaderDep, SystemHeader};

use super::Evaluation;

/// Length-prefixed fields, and lists prefixed by their length, so no two different
/// evaluations feed the same bytes.
struct Fields(blake3::Hasher);

impl Fields {
    fn put(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
    }
    fn count(&mut self, n: usize) {
        self.0.update(&(n as u64).to_le_bytes());
    }
    fn list<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a String>) {
        self.count(items.len());
        items.for_each(|x| self.put(x));
    }
    fn hash(&mut self, h: &ContentHash) {
        self.0.update(&h.0);
    }
}

pub(super) fn of(e: &Evaluation) -> ContentHash {
    let mut h = Fields(blake3::Hasher::new());
    h.put(concat!(
        "cmod-eval-fingerprint-v5 ",
        env!("CARGO_PKG_VERSION")
    ));
    h.put(e.profile.as_str());
    h.hash(&e.toolchain.identity);
    h.count(e.packages.packages.len());
    for (p, pkg) in e.packages.packages.iter().enumerate() {
        h.put(&pkg.root.to_string_lossy());
        h.put(&pkg.file.text);
        for deps in [&pkg.deps, &pkg.dev_deps] {
            h.count(deps.len());
            for d in deps {
                h.put(&d.name);
                h.put(&d.package.to_string());
                h.put(if d.public { "public" } else { "private" });
            }
        }
        let s = &e.sources[p];
        for list in [&s.libs, &s.bins, &s.tests] {
            h.count(list.len());
            for t in list {
                h.put(&t.name);
                h.list(t.units.iter());
            }
        }
        // Generators that run a program: what their run derivations read.
        h.count(s.programs.len());
        for g in &s.programs {
            h.put(&g.name);
            h.put(if g.ran { "ran" } else { "pending" });
            h.list(g.inputs.iter());
            g.input_hashes.iter().for_each(|x| h.hash(x));
        }
    }
    let system = e.settings.all_system_libs();
    h.count(system.len());
    for lib in system {
        h.put(&lib.name);
        h.list(lib.cflags.iter());
        h.list(lib.libs.iter());
        h.count(lib.files.len());
        for (path, hash) in lib
            .files
            .iter()
            .chain(lib.pc_file.as_ref().map(|(p, h)| (p, h)))
        {
            h.put(path);
            h.hash(hash);
        }
    }
    units(&mut h, e);
    ContentHash(*h.0.finalize().as_bytes())
}

/// Every unit (with its flags and headers) and every precompiled header.
fn units(h: &mut Fields, e: &Evaluation) {
    let place = |at: &PkgPath| format!("{}/{}", at.package, at.rel);
    h.count(e.graph.units.len());
    for u in &e.graph.units {
        h.put(&format!("{:?} {:?} {:?}", u.origin, u.kind, u.module));
        h.put(&u.rel);
        h.hash(&u.hash);
        h.list(u.imports.iter().map(|i| &i.name));
        h.list(u.flags.render(&place).iter());
        h.put(&format!("{:?}", u.flags.pch));
        header_deps(h, &u.headers, &u.system);
    }
    h.count(e.pchs.len());
    for pch in &e.pchs {
        h.put(&place(&pch.at));
        h.hash(&pch.hash);
        h.list(pch.flags.render(&place).iter());
        for hd in &pch.headers {
            h.put(&hd.rel);
            h.hash(&hd.hash);
        }
        for s in &pch.system {
            h.put(&s.path);
            h.hash(&s.hash);
        }
    }
    header_units(h, e, &place);
}

/// The package and system headers a unit or header unit includes.
fn header_deps(h: &mut Fields, headers: &[HeaderDep], system: &[SystemHeader]) {
    h.count(headers.len());
    for hd in headers {
        h.put(hd.package.as_deref().unwrap_or(""));
        h.put(&hd.rel);
        h.hash(&hd.hash);
    }
    h.count(system.len());
    for s in system {
        h.put(&s.path);
        h.hash(&s.hash);
    }
}

/// Every header unit, and which units import which.
fn header_units(h: &mut Fields, e: &Evaluation, place: &dyn Fn(&PkgPath) -> String) {
    let hu = &e.header_units;
    h.count(hu.scans.len());
    for s in &hu.scans {
        h.put(&format!("{:?} {} {}", s.source, s.spelling, s.importer));
        h.hash(&s.hash);
        h.list(s.flags.render(place).iter());
        header_deps(h, &s.headers, &s.system);
    }
    h.count(hu.uses.len());
    for uses in &hu.uses {
        h.count(uses.len());
        for u in uses {
            h.put(&format!("{} {} {}", u.index, u.line, u.exported));
        }
    }
}
