//! The errors of the REAPI client.

use std::path::PathBuf;

use crate::digest::Digest;

/// What can go wrong when speaking REAPI to a remote server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The remote URL is not one cmod can use.
    #[error("invalid remote URL `{url}`: {reason}")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A header to send with every call is malformed.
    #[error("invalid remote header `{header}`: {reason}")]
    InvalidHeader {
        /// The header as given (its value left out, it may be a secret).
        header: String,
        /// Why it was refused.
        reason: String,
    },
    /// The server could not be reached (connection refused, unknown host, TLS failure...).
    #[error("cannot reach the REAPI server at {url}: {detail}")]
    Unreachable {
        /// The server's URL.
        url: String,
        /// The transport's explanation.
        detail: String,
    },
    /// The server answered a call with a gRPC error status.
    #[error("the REAPI server at {url} failed {call}: {code:?}: {message}")]
    Server {
        /// The server's URL.
        url: String,
        /// The call that failed (e.g. `BatchUpdateBlobs`), with the blob or action when known.
        call: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// Received (or read) content does not match the digest it was requested by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (a blob, a file being uploaded...).
        what: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// A digest is malformed (not 64 lowercase hex digits, negative size...).
    #[error("invalid digest `{digest}`: {reason}")]
    InvalidDigest {
        /// The digest as received.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server's answer breaks the protocol (missing fields, unexpected types, unsafe paths).
    #[error("unexpected answer from the REAPI server at {url}: {detail}")]
    Protocol {
        /// The server's URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A local tree cannot be expressed in REAPI (non-UTF-8 name, absolute symlink, device...).
    #[error("{}: {reason}", path.display())]
    UnsupportedInput {
        /// The path concerned.
        path: PathBuf,
        /// Why it cannot be represented.
        reason: String,
    },
    /// The client's private async runtime could not be started.
    #[error("cannot start the REAPI client's runtime: {0}")]
    Runtime(std::io::Error),
}

impl Error {
    /// Whether the server is gone (not reachable, or it answered that it is unavailable or
    /// too slow), as opposed to a bad answer to this one call.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Server { code, .. } => {
                matches!(
                    code,
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                )
            }
            _ => false,
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
