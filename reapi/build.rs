//! Generates the REAPI v2, ByteStream, longrunning and Bots API client code from the vendored
//! `.proto` files in `proto/` (see `proto/README.md` for where they come from).
//!
//! The compiler is `protoc`, Debian's `protobuf-compiler` (installed by `scripts/install-deps`),
//! rather than the pure-Rust `protox`: protoc adds nothing to the build, while protox and its
//! parser stack would add dozens of crates to every from-scratch CI build. The well-known types
//! it imports (`google/protobuf/*.proto`) are vendored too, so no `libprotobuf-dev` is needed.
//! `PROTOC` selects another compiler, as prost-build documents.

use std::path::{Path, PathBuf};

/// The services and messages cmod speaks; their imports are compiled along.
const PROTOS: &[&str] = &[
    "build/bazel/remote/execution/v2/remote_execution.proto",
    "google/bytestream/bytestream.proto",
    "google/longrunning/operations.proto",
    "google/devtools/remoteworkers/v1test2/bots.proto",
    "google/devtools/remoteworkers/v1test2/command.proto",
];

fn main() {
    let proto_dir = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() && !protoc_on_path() {
        eprintln!(
            "error: `protoc` was not found on PATH; cmod-reapi generates its gRPC code with it.\n\
             Run scripts/install-deps (it installs Debian's protobuf-compiler), or set PROTOC."
        );
        std::process::exit(1);
    }
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| proto_dir.join(p)).collect();
    let result = tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_protos(&files, &[proto_dir]);
    if let Err(e) = result {
        eprintln!("error: generating the REAPI code from proto/ failed: {e}");
        std::process::exit(1);
    }
}

/// Whether an executable named `protoc` is on `PATH`.
fn protoc_on_path() -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_file(&dir.join("protoc")))
}

fn is_file(p: &Path) -> bool {
    p.is_file()
}
