//! How paths are shown in messages.

use std::path::Path;

/// A path shown relative to the current directory when it is below it (`.` for the
/// current directory itself).
pub fn display_path(p: &Path) -> String {
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(|r| r.display().to_string()))
        .unwrap_or_else(|| p.display().to_string());
    if shown.is_empty() {
        ".".into()
    } else {
        shown
    }
}
