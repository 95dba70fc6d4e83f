//! The connection to a REAPI server: a private tokio runtime, one HTTP/2 channel, and the
//! Capabilities call.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, BinaryMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig};

use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::proto::build::bazel::remote::execution::v2 as re;

/// How long establishing the TCP (and TLS) connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message the client accepts from the server (tonic's default is 4 MiB, which a
/// full `BatchReadBlobs` answer plus its framing can exceed).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The batch size used when the server states no limit: the gRPC default message size.
const DEFAULT_BATCH_LIMIT: u64 = 4 * 1024 * 1024;

/// A blocking REAPI client. Every call runs on the client's own small tokio runtime; callers
/// never see async code. It is `Send + Sync`: threads may share one client (calls multiplex over
/// one HTTP/2 connection). It must not be used from inside an async runtime.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    endpoint: Endpoint,
    headers: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    request_metadata: BinaryMetadataValue,
    capabilities: OnceLock<Capabilities>,
}

/// The header REAPI servers read the client's identity from (they log it).
const REQUEST_METADATA_HEADER: &str = "build.bazel.remote.execution.v2.requestmetadata-bin";

/// What the server supports, from `GetCapabilities`.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The CAS digest functions, by name (`SHA256`, ...).
    pub digest_functions: Vec<String>,
    /// The largest total size of a `BatchUpdateBlobs`/`BatchReadBlobs` request (0: no limit).
    pub max_batch_total_size: u64,
    /// Whether the Execution service runs actions.
    pub exec_enabled: bool,
    /// The digest function of the Execution service, by name.
    pub exec_digest_function: String,
    /// Whether clients may write to the action cache.
    pub action_cache_update_enabled: bool,
    /// The oldest and newest REAPI versions served, as `major.minor`.
    pub api_versions: (String, String),
    /// The full answer.
    pub raw: re::ServerCapabilities,
}

impl Capabilities {
    /// Whether the CAS hashes with SHA-256, the only digest function this client speaks.
    pub fn supports_sha256(&self) -> bool {
        self.digest_functions.iter().any(|f| f == "SHA256")
    }

    fn from_proto(raw: re::ServerCapabilities) -> Capabilities {
        let name = |v: i32| {
            re::digest_function::Value::try_from(v)
                .map_or_else(|_| format!("UNKNOWN({v})"), |f| f.as_str_name().to_string())
        };
        let cache = raw.cache_capabilities.clone().unwrap_or_default();
        let exec = raw.execution_capabilities.clone().unwrap_or_default();
        let version = |v: &Option<crate::proto::build::bazel::semver::SemVer>| {
            v.as_ref()
                .map_or_else(String::new, |v| format!("{}.{}", v.major, v.minor))
        };
        Capabilities {
            digest_functions: cache.digest_functions.iter().map(|&v| name(v)).collect(),
            max_batch_total_size: u64::try_from(cache.max_batch_total_size_bytes).unwrap_or(0),
            exec_enabled: exec.exec_enabled,
            exec_digest_function: name(exec.digest_function),
            action_cache_update_enabled: cache
                .action_cache_update_capabilities
                .is_some_and(|c| c.update_enabled),
            api_versions: (
                version(&raw.low_api_version),
                version(&raw.high_api_version),
            ),
            raw,
        }
    }
}

impl Client {
    /// Connects to `endpoint`. An unreachable server gives [`Error::Unreachable`] naming its URL.
    pub fn connect(endpoint: Endpoint) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cmod-reapi")
            .enable_io()
            .enable_time()
            .build()
            .map_err(Error::Runtime)?;
        let headers = endpoint
            .headers()
            .iter()
            .map(|(name, value)| {
                let invalid = |reason: &str| Error::InvalidHeader {
                    header: name.clone(),
                    reason: reason.to_string(),
                };
                let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                    .map_err(|_| invalid("not a gRPC metadata key"))?;
                let value = AsciiMetadataValue::try_from(value.as_str())
                    .map_err(|_| invalid("not a gRPC metadata value"))?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        let channel = runtime.block_on(open_channel(&endpoint))?;
        let identity = re::RequestMetadata {
            tool_details: Some(re::ToolDetails {
                tool_name: "cmod".to_string(),
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
            }),
            ..re::RequestMetadata::default()
        };
        Ok(Client {
            runtime,
            channel,
            endpoint,
            headers,
            request_metadata: BinaryMetadataValue::from_bytes(&identity.encode_to_vec()),
            capabilities: OnceLock::new(),
        })
    }

    /// The server this client speaks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server's capabilities (asked once, then remembered).
    pub fn capabilities(&self) -> Result<Capabilities> {
        if let Some(c) = self.capabilities.get() {
            return Ok(c.clone());
        }
        let mut stub = re::capabilities_client::CapabilitiesClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE);
        let request = self.request(re::GetCapabilitiesRequest {
            instance_name: self.instance_name().to_string(),
        });
        let raw = self
            .block_on(stub.get_capabilities(request))
            .map_err(|s| self.status_error("GetCapabilities", s))?
            .into_inner();
        let caps = Capabilities::from_proto(raw);
        Ok(self.capabilities.get_or_init(|| caps).clone())
    }

    /// The byte budget of one batch call: the server's limit (or 4 MiB when it states none),
    /// less room for the request's framing.
    pub(crate) fn batch_limit(&self) -> Result<u64> {
        let stated = self.capabilities()?.max_batch_total_size;
        let limit = if stated == 0 {
            DEFAULT_BATCH_LIMIT
        } else {
            stated.min(MAX_MESSAGE as u64)
        };
        Ok(limit.saturating_sub(64 * 1024).max(1))
    }

    pub(crate) fn instance_name(&self) -> &str {
        self.endpoint.instance_name()
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Runs `fut` to completion on the client's runtime.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.runtime.block_on(fut)
    }

    /// A request carrying the endpoint's headers and REAPI's `RequestMetadata` (tool: cmod).
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        for (key, value) in &self.headers {
            metadata.append(key.clone(), value.clone());
        }
        metadata.insert_bin(REQUEST_METADATA_HEADER, self.request_metadata.clone());
        request
    }

    /// The error for a failed call: [`Error::Unreachable`] when the transport could not reach
    /// the server, [`Error::Server`] with the gRPC status otherwise.
    pub(crate) fn status_error(&self, call: impl Into<String>, status: tonic::Status) -> Error {
        if status.code() == tonic::Code::Unavailable && std::error::Error::source(&status).is_some()
        {
            return Error::Unreachable {
                url: self.endpoint.url().to_string(),
                detail: error_chain(&status),
            };
        }
        Error::Server {
            url: self.endpoint.url().to_string(),
            call: call.into(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// An [`Error::Protocol`] for this server.
    pub fn protocol_error(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            url: self.endpoint.url().to_string(),
            detail: detail.into(),
        }
    }
}

async fn open_channel(endpoint: &Endpoint) -> Result<Channel> {
    let unreachable = |detail: String| Error::Unreachable {
        url: endpoint.url().to_string(),
        detail,
    };
    let mut transport = Channel::from_shared(endpoint.transport_uri())
        .map_err(|e| Error::InvalidEndpoint {
            url: endpoint.url().to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    if endpoint.is_tls() {
        let tls = ClientTlsConfig::new()
            .with_native_roots()
            .domain_name(endpoint.host());
        transport = transport
            .tls_config(tls)
            .map_err(|e| unreachable(error_chain(&e)))?;
    }
    transport
        .connect()
        .await
        .map_err(|e| unreachable(error_chain(&e)))
}

/// `e` and its sources, joined with `: ` (tonic's own messages stop at "transport error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
