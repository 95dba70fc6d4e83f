//! Small path helpers shared by error messages, the lockfile, header-unit resolution and
//! generators.

use std::path::Path;

/// `to` relative to `from`, `/`-separated (e.g. `../units`), `.` when they are equal.
/// Both must be absolute and free of `..` (canonical paths are).
pub fn relative(from: &Path, to: &Path) -> String {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), f.len() - common).collect();
    parts.extend(
        t[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// A package-relative, `/`-separated path with `.` and empty parts dropped and `..`
/// applied (`a/./b/../c` → `a/c`); `None` if it climbs out of the package.
pub fn normalize_relative(rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_normalised_inside_the_package() {
        assert_eq!(
            normalize_relative("src/./a/../cfg.h").as_deref(),
            Some("src/cfg.h")
        );
        assert_eq!(normalize_relative("cfg.h").as_deref(), Some("cfg.h"));
        assert_eq!(normalize_relative("../outside.h"), None);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/b")), "../b");
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/a/c")), "c");
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/a")), ".");
    }
}
