//! Where a symlink inside a tree really leads.
//!
//! A lexical check of one link's target is not enough: `a/s -> ..` and `t -> a/s/..` each
//! look harmless, but `t` resolves through `a/s` to the tree's parent. This module resolves
//! a link the way the kernel would — following every link it meets on the way, relative to
//! the directory that holds it — without ever leaving the tree, and reports the first step
//! that would. Both build outputs and unpacked archives go through it before they can
//! become store paths.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// How many links one resolution may follow (Linux's own limit is 40).
pub const MAX_LINKS_FOLLOWED: usize = 40;

/// Why a link is not allowed to stay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkProblem {
    /// The link's target is absolute.
    #[error("is a symlink to the absolute path `{target}`, which points outside the store path")]
    Absolute {
        /// The link's target.
        target: String,
    },
    /// The link resolves outside the store path.
    #[error(
        "is a symlink to `{target}`, which escapes the store path{}",
        via.as_ref().map(|v| format!(" (through the link `{v}`)")).unwrap_or_default()
    )]
    Escapes {
        /// The link's target.
        target: String,
        /// The link on the way through which it leads out, when that is not this one.
        via: Option<String>,
    },
    /// Following the link does not end (a loop, or too many links).
    #[error("is a symlink to `{target}` that does not resolve within {MAX_LINKS_FOLLOWED} links (a loop)")]
    Loop {
        /// The link's target.
        target: String,
    },
    /// A link on the way could not be read.
    #[error("could not be resolved: {0}")]
    Io(String),
}

/// One step of a resolution: up to the parent, or into a named entry.
enum Step {
    Up,
    Into(OsString),
}

/// The steps of a relative target (`.` dropped); `None` for an absolute one.
fn steps(target: &Path) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    for c in target.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => out.push(Step::Up),
            Component::Normal(n) => out.push(Step::Into(n.to_owned())),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Resolve the symlink at `link` (relative to `root`, not empty) inside the tree `root`.
/// `Ok` means every step of the resolution, through any number of links, stays inside
/// `root`. A dangling target is fine as long as it names a place inside.
pub fn check_link_stays_inside(root: &Path, link: &Path) -> Result<(), LinkProblem> {
    let io = |e: std::io::Error| LinkProblem::Io(e.to_string());
    let first = std::fs::read_link(root.join(link)).map_err(io)?;
    let top = first.display().to_string();
    let mut queue: VecDeque<Step> = steps(&first)
        .ok_or_else(|| LinkProblem::Absolute {
            target: top.clone(),
        })?
        .into();
    // Where the resolution stands, as real (non-link) components below `root`: it starts
    // in the directory that holds the link.
    let mut here: Vec<OsString> = link
        .parent()
        .map(|p| p.components().map(|c| c.as_os_str().to_owned()).collect())
        .unwrap_or_default();
    let mut followed = 0usize;
    let mut via: Option<String> = None;
    while let Some(step) = queue.pop_front() {
        match step {
            Step::Up => {
                if here.pop().is_none() {
                    return Err(LinkProblem::Escapes { target: top, via });
                }
            }
            Step::Into(name) => {
                let mut rel = PathBuf::new();
                rel.extend(&here);
                rel.push(&name);
                match std::fs::symlink_metadata(root.join(&rel)) {
                    Ok(m) if m.file_type().is_symlink() => {
                        followed += 1;
                        if followed > MAX_LINKS_FOLLOWED {
                            return Err(LinkProblem::Loop { target: top });
                        }
                        let next = std::fs::read_link(root.join(&rel)).map_err(io)?;
                        let Some(more) = steps(&next) else {
                            return Err(LinkProblem::Escapes {
                                target: top,
                                via: Some(format!("{} -> {}", rel.display(), next.display())),
                            });
                        };
                        for s in more.into_iter().rev() {
                            queue.push_front(s);
                        }
                        via = Some(rel.display().to_string());
                    }
                    Ok(_) => here.push(name),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => here.push(name),
                    Err(e) => return Err(io(e)),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("p/a/b")).unwrap();
        std::fs::write(t.path().join("p/f"), "x").unwrap();
        t
    }

    #[test]
    fn links_that_stay_inside_pass() {
        let t = tree();
        let p = t.path().join("p");
        symlink("../f", p.join("a/up")).unwrap();
        symlink("b/../../f", p.join("a/down-up")).unwrap();
        symlink("missing/x", p.join("dangling")).unwrap();
        symlink("a/up", p.join("chain")).unwrap();
        symlink("./a/./b", p.join("dots")).unwrap();
        for l in ["a/up", "a/down-up", "dangling", "chain", "dots"] {
            assert_eq!(check_link_stays_inside(&p, Path::new(l)), Ok(()), "{l}");
        }
    }

    #[test]
    fn a_chain_of_harmless_looking_links_is_caught() {
        let t = tree();
        let p = t.path().join("p");
        // Each target looks inside on its own; together they reach the store directory.
        symlink("..", p.join("a/s")).unwrap();
        symlink("a/s/..", p.join("t")).unwrap();
        assert_eq!(check_link_stays_inside(&p, Path::new("a/s")), Ok(()));
        let e = check_link_stays_inside(&p, Path::new("t")).unwrap_err();
        assert_eq!(
            e,
            LinkProblem::Escapes {
                target: "a/s/..".into(),
                via: Some("a/s".into())
            }
        );
        assert!(e.to_string().contains("through the link `a/s`"), "{e}");
        // A link elsewhere that reaches the trick is caught too.
        symlink("../../t", p.join("a/b/u")).unwrap();
        assert!(check_link_stays_inside(&p, Path::new("a/b/u")).is_err());
    }

    #[test]
    fn links_through_an_absolute_link_and_loops_are_caught() {
        let t = tree();
        let p = t.path().join("p");
        symlink("/etc", p.join("a/abs")).unwrap();
        symlink("a/abs/passwd", p.join("via-abs")).unwrap();
        let e = check_link_stays_inside(&p, Path::new("via-abs")).unwrap_err();
        assert!(e.to_string().contains("escapes the store path"), "{e}");
        assert!(
            e.to_string().contains("through the link `a/abs -> /etc`"),
            "{e}"
        );
        assert_eq!(
            check_link_stays_inside(&p, Path::new("a/abs")),
            Err(LinkProblem::Absolute {
                target: "/etc".into()
            })
        );
        symlink("loop2", p.join("loop1")).unwrap();
        symlink("loop1", p.join("loop2")).unwrap();
        assert_eq!(
            check_link_stays_inside(&p, Path::new("loop1")),
            Err(LinkProblem::Loop {
                target: "loop2".into()
            })
        );
    }
}
