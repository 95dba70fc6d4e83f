//! Compiler diagnostics name files as the build step saw them: `src/<package>/<path>` in
//! its build directory (and `toolchain/std/...` for the standard library modules). Before
//! a failed step's diagnostics are shown, those names are mapped back to the user's files
//! (relative to the current directory when below it), so editors and terminals can jump
//! to them. Only the source and header inputs of the failed derivation are rewritten,
//! and only where they stand as a whole path; the log kept in the store is unchanged.

use cmod_evaluator::compdb::HostRoots;
use cmod_evaluator::derive::STD_MODULE_DIR;
use cmod_schema::derivation::{Derivation, InputFrom, InputRole};

use crate::diagnostic::display_path;

/// Where each package's sources live on the host (the compile database's mapping).
#[derive(Debug, Clone, Default)]
pub struct SourceRoots(HostRoots);

/// One in-sandbox path and the user's path it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rename {
    from: String,
    to: String,
    /// `from` is a directory: paths below it are rewritten too.
    dir: bool,
}

impl SourceRoots {
    /// The renames for `drv`'s source and header inputs, longest first.
    fn renames(&self, drv: &Derivation) -> Vec<Rename> {
        let mut out = Vec::new();
        for input in &drv.inputs {
            if !matches!(input.role, InputRole::Source | InputRole::Headers)
                || !matches!(input.from, InputFrom::Path { .. })
            {
                continue;
            }
            let Some(host) = self.0.host_path(&input.at) else {
                continue;
            };
            out.push(if input.at == STD_MODULE_DIR {
                Rename {
                    from: format!("{STD_MODULE_DIR}/"),
                    to: format!("{}/", host.display()),
                    dir: true,
                }
            } else {
                Rename {
                    from: input.at.clone(),
                    to: display_path(&host),
                    dir: false,
                }
            });
        }
        out.sort_by(|a, b| b.from.len().cmp(&a.from.len()).then(a.from.cmp(&b.from)));
        out.dedup();
        out
    }

    /// `log` with `drv`'s in-sandbox source paths replaced by the user's.
    pub fn rewrite(&self, drv: &Derivation, log: &str) -> String {
        rewrite_paths(log, &self.renames(drv))
    }
}

/// Whether `c` can end a path in a diagnostic (`file:line:col`, `'file'`, `(file)`, ...).
fn ends_path(c: Option<char>) -> bool {
    c.is_none_or(|c| c.is_whitespace() || matches!(c, ':' | '\'' | '"' | '`' | ')' | ','))
}

/// Whether `c` can come before a path.
fn starts_path(c: Option<char>) -> bool {
    c.is_none_or(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '(' | '='))
}

fn rewrite_paths(text: &str, renames: &[Rename]) -> String {
    if renames.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        let before = text[..i].chars().next_back();
        if starts_path(before) {
            for r in renames {
                if !text[i..].starts_with(&r.from) {
                    continue;
                }
                let end = i + r.from.len();
                if r.dir || ends_path(text[end..].chars().next()) {
                    out.push_str(&r.to);
                    i = end;
                    continue 'scan;
                }
            }
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The host directory of every package of `eval`, for [`SourceRoots`].
pub fn of_evaluation(eval: &cmod_evaluator::Evaluation) -> SourceRoots {
    SourceRoots(HostRoots::of(eval))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(from: &str, to: &str) -> Rename {
        Rename {
            from: from.into(),
            to: to.into(),
            dir: false,
        }
    }

    #[test]
    fn only_whole_known_paths_are_rewritten() {
        let renames = [
            r("src/p/src/a.cpp", "src/a.cpp"),
            r("src/p/inc/x.h", "inc/x.h"),
        ];
        let log = "In file included from src/p/src/a.cpp:1:\n\
                   src/p/inc/x.h:3:7: error: bad\n\
                   note: see 'src/p/inc/x.h' and src/p/inc/x.hpp:1:1 and xsrc/p/src/a.cpp:1\n\
                   bmi/p.pcm src/q/src/a.cpp:2:2\n";
        assert_eq!(
            rewrite_paths(log, &renames),
            "In file included from src/a.cpp:1:\n\
             inc/x.h:3:7: error: bad\n\
             note: see 'inc/x.h' and src/p/inc/x.hpp:1:1 and xsrc/p/src/a.cpp:1\n\
             bmi/p.pcm src/q/src/a.cpp:2:2\n"
        );
    }

    #[test]
    fn directories_rewrite_what_is_below_them() {
        let renames = [Rename {
            from: "toolchain/std/".into(),
            to: "/usr/share/libc++/v1/".into(),
            dir: true,
        }];
        assert_eq!(
            rewrite_paths("toolchain/std/std.cppm:9:1: error: x", &renames),
            "/usr/share/libc++/v1/std.cppm:9:1: error: x"
        );
        assert_eq!(
            rewrite_paths("é toolchain/stdx", &renames),
            "é toolchain/stdx"
        );
    }

    #[test]
    fn a_steps_sources_headers_and_std_modules_map_to_the_users_files() {
        let roots = SourceRoots(HostRoots::new(
            [("p".to_string(), std::path::PathBuf::from("/home/u/p"))],
            Some("/usr/share/libc++/v1".into()),
        ));
        let drv: Derivation = serde_json::from_value(serde_json::json!({
            "version": 1,
            "name": "p-0.1.0-a.o",
            "kind": "object",
            "toolchain": "blake3:0zz0gjzw4d47cdxrm0hn6valk4h0v40p0dl584zb9l37whpc74dm",
            "tool": "c++",
            "args": [],
            "env": {},
            "inputs": [
                {"at": "bmi/q.pcm", "role": "bmi",
                 "from": {"drv": "jgqbjrb75zxsn2v8gvwr0qjz4zg75anr-q.pcm.drv", "output": "bmi"}},
                {"at": "src/p/inc/a.h", "role": "headers",
                 "from": {"path": "m8707v8dpq06mp8bf6n2hvadj9vp4ifi-a.h"}},
                {"at": "src/p/src/a.cpp", "role": "source",
                 "from": {"path": "m8707v8dpq06mp8bf6n2hvadj9vp4ifj-a.cpp"}},
                {"at": "toolchain/std", "role": "source",
                 "from": {"path": "m8707v8dpq06mp8bf6n2hvadj9vp4ifk-libcxx-modules"}}
            ],
            "outputs": {"obj": {"at": "out/a.o", "name": "p-0.1.0-a.o"}}
        }))
        .unwrap();
        let log = "src/p/src/a.cpp:1:1: error: x\nsrc/p/inc/a.h:2:2: note: y\n\
                   toolchain/std/std.cppm:3:3: note: z\nbmi/q.pcm: w\n";
        assert_eq!(
            roots.rewrite(&drv, log),
            "/home/u/p/src/a.cpp:1:1: error: x\n/home/u/p/inc/a.h:2:2: note: y\n\
             /usr/share/libc++/v1/std.cppm:3:3: note: z\nbmi/q.pcm: w\n"
        );
    }
}
