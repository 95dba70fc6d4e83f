//! Where the REAPI server is: `grpc://host:port` or `grpcs://host:port`, the instance name, and
//! the headers (authentication, typically) sent with every call.

use std::fmt;

use crate::error::{Error, Result};

/// The environment variable [`Endpoint::with_headers_from_env`] reads by default:
/// `name=value` pairs separated by commas or newlines.
pub const HEADERS_ENV: &str = "CMOD_REMOTE_HEADERS";

/// A REAPI server's address, instance name and extra headers.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    tls: bool,
    host: String,
    port: u16,
    instance_name: String,
    headers: Vec<(String, String)>,
}

impl Endpoint {
    /// Parses `grpc://host:port` (plain HTTP/2) or `grpcs://host[:port]` (TLS, port 443 by
    /// default). IPv6 hosts are written in brackets: `grpc://[::1]:8980`. Paths, user names and
    /// other schemes are refused; the instance name is given with [`Endpoint::with_instance_name`].
    pub fn parse(url: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("grpcs://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("grpc://") {
            (false, rest)
        } else {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            return Err(invalid(&format!(
                "unsupported scheme `{scheme}`: use grpc://host:port or grpcs://host:port"
            )));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(invalid(
                "a path is not part of a REAPI address; give the instance name separately",
            ));
        }
        if authority.contains('@') {
            return Err(invalid(
                "user names are not supported; send credentials as headers",
            ));
        }
        if authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("whitespace in the address"));
        }
        let (host, port) = split_host_port(authority).map_err(|r| invalid(&r))?;
        let port = match (port, tls) {
            (Some(p), _) => p,
            (None, true) => 443,
            (None, false) => return Err(invalid("grpc:// needs a port (grpc://host:port)")),
        };
        Ok(Endpoint {
            url: url.to_string(),
            tls,
            host: host.to_string(),
            port,
            instance_name: String::new(),
            headers: Vec::new(),
        })
    }

    /// Sets the REAPI instance name (empty by default).
    pub fn with_instance_name(mut self, name: impl Into<String>) -> Endpoint {
        self.instance_name = name.into();
        self
    }

    /// Adds a header sent with every call. Names are ASCII, lowercased (gRPC metadata keys);
    /// binary (`-bin`) and reserved (`grpc-`, HTTP/2 pseudo) headers are refused.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidHeader {
            header: name.to_string(),
            reason: reason.to_string(),
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(invalid("names are letters, digits, `-`, `_` and `.`"));
        }
        if name.ends_with("-bin") || name.starts_with("grpc-") {
            return Err(invalid("binary and grpc- headers cannot be set"));
        }
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid("values are printable ASCII"));
        }
        self.headers.push((name, value.to_string()));
        Ok(self)
    }

    /// Adds the headers listed in `spec`: `name=value` entries separated by commas or newlines
    /// (empty entries ignored), e.g. `authorization=Bearer abc,x-team=build`.
    pub fn with_headers_from_str(mut self, spec: &str) -> Result<Endpoint> {
        for entry in spec.split([',', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let Some((name, value)) = entry.split_once('=') else {
                // Keep the value out of the message: the entry may be a bare secret.
                return Err(Error::InvalidHeader {
                    header: "(an entry without `=`)".to_string(),
                    reason: "entries are name=value".to_string(),
                });
            };
            self = self.with_header(name, value)?;
        }
        Ok(self)
    }

    /// Adds the headers listed in the environment variable `var` (see
    /// [`Endpoint::with_headers_from_str`]; [`HEADERS_ENV`] is cmod's). Unset or empty adds none.
    pub fn with_headers_from_env(self, var: &str) -> Result<Endpoint> {
        match std::env::var(var) {
            Ok(spec) => self.with_headers_from_str(&spec),
            Err(std::env::VarError::NotPresent) => Ok(self),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidHeader {
                header: var.to_string(),
                reason: "the variable is not valid Unicode".to_string(),
            }),
        }
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection uses TLS (`grpcs://`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The REAPI instance name.
    pub fn instance_name(&self) -> &str {
        &self.instance_name
    }

    /// The extra headers, lowercased names with their values.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The `http://` or `https://` URI the gRPC transport connects to.
    pub(crate) fn transport_uri(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Splits `host:port`, `host` or `[v6]:port`; the port, when present, is 1..=65535.
fn split_host_port(authority: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("expected `:port` after `]`")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err("write IPv6 addresses in brackets: [::1]:port".to_string())
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".to_string());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    Ok((host, port))
}

impl fmt::Debug for Endpoint {
    /// Header values are left out: they are usually credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("instance_name", &self.instance_name)
            .field("headers", &names)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_and_grpcs() {
        let e = Endpoint::parse("grpc://127.0.0.1:50051").unwrap();
        assert!(!e.is_tls());
        assert_eq!((e.host(), e.port()), ("127.0.0.1", 50051));
        assert_eq!(e.transport_uri(), "http://127.0.0.1:50051");
        let e = Endpoint::parse("grpcs://remote.example.com/").unwrap();
        assert!(e.is_tls());
        assert_eq!(e.port(), 443);
        assert_eq!(e.transport_uri(), "https://remote.example.com:443");
        let e = Endpoint::parse("grpc://[::1]:8980").unwrap();
        assert_eq!(e.host(), "::1");
        assert_eq!(e.transport_uri(), "http://[::1]:8980");
    }

    #[test]
    fn refuses_other_schemes_and_shapes() {
        for (url, needle) in [
            ("http://host:80", "unsupported scheme `http`"),
            ("host:80", "unsupported scheme ``"),
            ("grpc://host", "needs a port"),
            ("grpc://host:0", "not a port"),
            ("grpc://host:99999", "not a port"),
            ("grpc://:80", "host is missing"),
            ("grpc://host:80/main", "instance name separately"),
            ("grpc://user@host:80", "user names"),
            ("grpc://::1:80", "brackets"),
            ("grpc://[::1:80", "closing"),
        ] {
            let err = Endpoint::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn headers_from_a_list_and_their_validation() {
        let e = Endpoint::parse("grpc://h:1")
            .unwrap()
            .with_instance_name("main")
            .with_headers_from_str("Authorization=Bearer a=b, x-team=build\n\n")
            .unwrap();
        assert_eq!(e.instance_name(), "main");
        assert_eq!(
            e.headers(),
            &[
                ("authorization".to_string(), "Bearer a=b".to_string()),
                ("x-team".to_string(), "build".to_string())
            ]
        );
        let debug = format!("{e:?}");
        assert!(!debug.contains("Bearer"), "{debug}");
        let base = Endpoint::parse("grpc://h:1").unwrap();
        assert!(base.clone().with_headers_from_str("secret-token").is_err());
        assert!(base.clone().with_header("x-bin", "v").is_err());
        assert!(base.clone().with_header("bad name", "v").is_err());
        assert!(base.clone().with_header("ok", "caf\u{e9}").is_err());
    }

    #[test]
    fn headers_from_the_environment() {
        let var = "CMOD_REAPI_TEST_HEADERS_ENDPOINT";
        let base = Endpoint::parse("grpc://h:1").unwrap();
        assert!(base
            .clone()
            .with_headers_from_env(var)
            .unwrap()
            .headers()
            .is_empty());
        // SAFETY-free: std::env::set_var is safe in edition 2021; this variable is this test's own.
        std::env::set_var(var, "x-a=1");
        let e = base.with_headers_from_env(var).unwrap();
        std::env::remove_var(var);
        assert_eq!(e.headers(), &[("x-a".to_string(), "1".to_string())]);
    }
}
