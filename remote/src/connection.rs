//! The connection a remote service makes at its first use and keeps, and how a call to it
//! went wrong.

use std::sync::OnceLock;

use cmod_reapi::{Capabilities, Client, Endpoint};

/// How a call went wrong: the server is gone (unreachable, or it said it is unavailable
/// or too slow), it refused this client's credentials, or this one answer is unusable.
#[derive(Clone)]
pub(crate) enum Trouble {
    Gone(String),
    /// `UNAUTHENTICATED` or `PERMISSION_DENIED`: no call will do better in this run.
    Refused(String),
    Bad(String),
    /// The server is overloaded (`RESOURCE_EXHAUSTED`): worth trying again shortly.
    Busy(String),
}

impl Trouble {
    fn text(self) -> String {
        match self {
            Trouble::Gone(why) | Trouble::Refused(why) | Trouble::Bad(why) | Trouble::Busy(why) => {
                why
            }
        }
    }
}

impl From<cmod_reapi::Error> for Trouble {
    fn from(e: cmod_reapi::Error) -> Trouble {
        match e {
            cmod_reapi::Error::Unreachable { detail, .. } => Trouble::Gone(detail),
            e if e.is_unreachable() => Trouble::Gone(e.to_string()),
            e @ cmod_reapi::Error::Server {
                code: cmod_reapi::Code::ResourceExhausted,
                ..
            } => Trouble::Busy(e.to_string()),
            e @ cmod_reapi::Error::Server {
                code: cmod_reapi::Code::Unauthenticated | cmod_reapi::Code::PermissionDenied,
                ..
            } => Trouble::Refused(format!(
                "{e}; the headers sent come from ${}",
                cmod_reapi::HEADERS_ENV
            )),
            e => Trouble::Bad(e.to_string()),
        }
    }
}

/// A client connected at first use, its server's capabilities checked once.
pub(crate) struct Connection {
    endpoint: Endpoint,
    client: OnceLock<Result<Client, Trouble>>,
}

impl Connection {
    pub(crate) fn new(endpoint: Endpoint) -> Connection {
        Connection {
            endpoint,
            client: OnceLock::new(),
        }
    }

    pub(crate) fn url(&self) -> &str {
        self.endpoint.url()
    }

    /// The client, connected (and the capabilities accepted by `check`) at the first call;
    /// if that failed, every call says why: as the server refusing this client when it
    /// did, else as the server being gone.
    pub(crate) fn client(
        &self,
        check: impl FnOnce(&Capabilities) -> Result<(), String>,
    ) -> Result<&Client, Trouble> {
        let slot = self.client.get_or_init(|| {
            let gone = |e: cmod_reapi::Error| match Trouble::from(e) {
                refused @ Trouble::Refused(_) => refused,
                other => Trouble::Gone(other.text()),
            };
            let client = Client::connect(self.endpoint.clone()).map_err(gone)?;
            let caps = client.capabilities().map_err(gone)?;
            check(&caps).map_err(Trouble::Gone)?;
            Ok(client)
        });
        slot.as_ref().map_err(Trouble::clone)
    }
}
