//! Small path helpers shared by error messages and the lockfile.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/b")), "../b");
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/a/c")), "c");
        assert_eq!(relative(Path::new("/x/a"), Path::new("/x/a")), ".");
    }
}
