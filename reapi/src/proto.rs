//! The protobuf messages and gRPC client stubs generated from `proto/` by `build.rs`
//! (client stubs only, no server code).
#![allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]

/// `build.bazel.*`: REAPI v2 and its version type.
pub mod build {
    /// `build.bazel.*`.
    pub mod bazel {
        /// `build.bazel.semver`.
        pub mod semver {
            tonic::include_proto!("build.bazel.semver");
        }
        /// `build.bazel.remote.*`.
        pub mod remote {
            /// `build.bazel.remote.execution.*`.
            pub mod execution {
                /// `build.bazel.remote.execution.v2`: REAPI v2.
                pub mod v2 {
                    tonic::include_proto!("build.bazel.remote.execution.v2");
                }
            }
        }
    }
}

/// `google.*`: ByteStream, longrunning operations, RPC status, the Bots API.
pub mod google {
    /// `google.bytestream`.
    pub mod bytestream {
        tonic::include_proto!("google.bytestream");
    }
    /// `google.longrunning`.
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    /// `google.api` (the HTTP annotations the protos carry; unused at run time).
    pub mod api {
        tonic::include_proto!("google.api");
    }
    /// `google.devtools.*`.
    pub mod devtools {
        /// `google.devtools.remoteworkers.*`.
        pub mod remoteworkers {
            /// `google.devtools.remoteworkers.v1test2`: the Bots API.
            pub mod v1test2 {
                tonic::include_proto!("google.devtools.remoteworkers.v1test2");
            }
        }
    }
}
