// The golden vectors of `schema/golden/vectors.txt` for Rust tests, which `include!` this
// file inside their test module (it is not part of any crate's library). `reference.py`
// re-derives the same vectors independently, so both implementations are held to the same
// bytes.

/// The whole vectors file, read at compile time (a change to it rebuilds the tests).
const GOLDEN_VECTORS: &str = include_str!("vectors.txt");

/// The value of the vector `name`. Panics if the file has no such vector.
#[allow(dead_code)]
fn golden(name: &str) -> &'static str {
    GOLDEN_VECTORS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, value) = l.split_once(' ')?;
            (n == name).then(|| value.trim_start_matches(' '))
        })
        .unwrap_or_else(|| panic!("schema/golden/vectors.txt has no vector `{name}`"))
}

/// Compare every computed `(name, value)` with its vector, and fail listing *all* the
/// mismatches (so one run shows every check that a change breaks).
#[allow(dead_code)]
fn assert_golden(computed: &[(&str, String)]) {
    let bad: Vec<String> = computed
        .iter()
        .filter(|(name, got)| golden(name) != got.as_str())
        .map(|(name, got)| format!("`{name}`:\n   got {got}\n  want {}", golden(name)))
        .collect();
    assert!(
        bad.is_empty(),
        "{} golden vector(s) of schema/golden/vectors.txt differ (a format change: bump the \
         format's version tag instead of editing the vector):\n{}",
        bad.len(),
        bad.join("\n")
    );
}
