//! How cmod reaches other stores and caches: the bearer token for HTTP caches, extra
//! `ssh` options and the time limits. The command line makes one value at the top
//! ([`Connect::from_env`], the only place the store reads these environment variables)
//! and passes it down; a library user passes its own or takes the defaults.

use std::time::Duration;

use crate::limits::{
    secs_from_env, HTTP_READ_TIMEOUT_SECS, HTTP_TIMEOUT_SECS, SSH_READ_TIMEOUT_SECS,
};

/// The environment variable holding the bearer token for HTTP caches.
pub const TOKEN_VAR: &str = "CMOD_CACHE_TOKEN";

/// Settings for connecting to `http(s)://` caches and `ssh://` stores.
#[derive(Debug, Clone)]
pub struct Connect {
    /// Bearer token sent to HTTP caches (`$CMOD_CACHE_TOKEN`).
    pub http_token: Option<String>,
    /// Extra arguments for `ssh` (`$CMOD_SSHOPTS`, split on whitespace).
    pub ssh_options: Vec<String>,
    /// Budget for a whole HTTP metadata response (`$CMOD_HTTP_TIMEOUT`).
    pub http_timeout: Duration,
    /// Longest HTTP wait without a byte (`$CMOD_HTTP_READ_TIMEOUT`).
    pub http_read_timeout: Duration,
    /// Longest wait for an `ssh://` peer's answer without a byte
    /// (`$CMOD_SSH_READ_TIMEOUT`).
    pub ssh_read_timeout: Duration,
}

impl Default for Connect {
    /// No token, no extra ssh options, the default time limits.
    fn default() -> Connect {
        Connect {
            http_token: None,
            ssh_options: Vec::new(),
            http_timeout: Duration::from_secs(HTTP_TIMEOUT_SECS),
            http_read_timeout: Duration::from_secs(HTTP_READ_TIMEOUT_SECS),
            ssh_read_timeout: Duration::from_secs(SSH_READ_TIMEOUT_SECS),
        }
    }
}

impl Connect {
    /// The settings the environment variables above give (each unset, empty or
    /// unparsable one keeps its default).
    pub fn from_env() -> Connect {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Connect {
            http_token: var(TOKEN_VAR),
            ssh_options: var("CMOD_SSHOPTS")
                .map(|o| o.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            http_timeout: secs_from_env("CMOD_HTTP_TIMEOUT", HTTP_TIMEOUT_SECS),
            http_read_timeout: secs_from_env("CMOD_HTTP_READ_TIMEOUT", HTTP_READ_TIMEOUT_SECS),
            ssh_read_timeout: secs_from_env("CMOD_SSH_READ_TIMEOUT", SSH_READ_TIMEOUT_SECS),
        }
    }
}
