//! The connection a remote service makes at its first use and keeps, and how a call to it
//! went wrong.

use std::sync::OnceLock;

use cmod_reapi::{Capabilities, Client, Endpoint};

/// How a call went wrong: the server is gone (unreachable, or it said it is unavailable
/// or too slow), or this one answer is unusable.
pub(crate) enum Trouble {
    Gone(String),
    Bad(String),
    /// The server is overloaded (`RESOURCE_EXHAUSTED`): worth trying again shortly.
    Busy(String),
}

impl Trouble {
    fn text(self) -> String {
        match self {
            Trouble::Gone(why) | Trouble::Bad(why) | Trouble::Busy(why) => why,
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
            e => Trouble::Bad(e.to_string()),
        }
    }
}

/// A client connected at first use, its server's capabilities checked once.
pub(crate) struct Connection {
    endpoint: Endpoint,
    client: OnceLock<Result<Client, String>>,
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
    /// if that failed, every call says why, as the server being gone.
    pub(crate) fn client(
        &self,
        check: impl FnOnce(&Capabilities) -> Result<(), String>,
    ) -> Result<&Client, Trouble> {
        let slot = self.client.get_or_init(|| {
            let client =
                Client::connect(self.endpoint.clone()).map_err(|e| Trouble::from(e).text())?;
            let caps = client.capabilities().map_err(|e| Trouble::from(e).text())?;
            check(&caps)?;
            Ok(client)
        });
        slot.as_ref().map_err(|why| Trouble::Gone(why.clone()))
    }
}
