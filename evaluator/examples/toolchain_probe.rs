//! Prints the discovered toolchain as JSON and the time a cached re-check takes.
//! `cargo run -p cmod-evaluator --example toolchain_probe -- [cache-dir]`

fn main() {
    let cache = std::env::args().nth(1).map(std::path::PathBuf::from);
    let req = cmod_evaluator::toolchain::ToolchainRequest::default();
    let start = std::time::Instant::now();
    match cmod_evaluator::toolchain::discover(&req, cache.as_deref()) {
        Ok(info) => {
            let elapsed = start.elapsed();
            println!(
                "{}",
                serde_json::to_string_pretty(&info).unwrap_or_default()
            );
            eprintln!("discover took {elapsed:?}");
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
