//! The Bots API (`google.devtools.remoteworkers.v1test2`) through which a worker takes work
//! from the server: a bot session is created, then updated in a loop; the server hands out
//! leases (an Action to run), the bot reports each lease completed with its `ActionResult`.
//!
//! BuildGrid 0.4.4 long-polls: `CreateBotSession` and `UpdateBotSession` wait for work for 80%
//! of the call's deadline, and hand out none when that is under its 3 s network timeout; so a
//! poll timeout of at least 5 s is needed there. Its leases arrive already `ACTIVE`; the
//! protocol's `PENDING` leases are accepted (set `ACTIVE`) by [`Bot::poll`] too.

use std::collections::HashSet;
use std::time::Duration;

use prost::Message;

use crate::client::{Client, MAX_MESSAGE};
use crate::digest::Digest;
use crate::error::Result;
use crate::proto::build::bazel::remote::execution::v2 as re;
use crate::proto::google::devtools::remoteworkers::v1test2 as rw;
use crate::proto::google::rpc;

const TYPE_PREFIX: &str = "type.googleapis.com/";
const ACTION_TYPE: &str = "build.bazel.remote.execution.v2.Action";
const DIGEST_TYPE: &str = "build.bazel.remote.execution.v2.Digest";
const ACTION_RESULT_TYPE: &str = "build.bazel.remote.execution.v2.ActionResult";

/// What a lease asks the bot to run.
#[derive(Debug, Clone)]
pub enum LeaseWork {
    /// The Action itself (BuildGrid sends this when it has it).
    Action(re::Action),
    /// The digest of the Action, to fetch from the CAS.
    ActionDigest(Digest),
}

/// A lease newly handed to the bot.
#[derive(Debug, Clone)]
pub struct LeaseAssignment {
    /// The lease's id (BuildGrid: the job's name), used to complete it.
    pub id: String,
    /// What to run.
    pub work: LeaseWork,
}

impl Client {
    fn bots(&self) -> rw::bots_client::BotsClient<tonic::transport::Channel> {
        rw::bots_client::BotsClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// `CreateBotSession` under the instance name, waiting at most `timeout` (the server may
    /// hold the call that long to hand out leases).
    pub fn create_bot_session(
        &self,
        session: rw::BotSession,
        timeout: Duration,
    ) -> Result<rw::BotSession> {
        let mut request = self.request(rw::CreateBotSessionRequest {
            parent: self.instance_name().to_string(),
            bot_session: Some(session),
        });
        request.set_timeout(timeout);
        self.block_on(self.bots().create_bot_session(request))
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status_error("CreateBotSession", s))
    }

    /// `UpdateBotSession`: reports the session's leases (completed ones with their results) and
    /// returns the server's view, with new leases; waits at most `timeout`.
    pub fn update_bot_session(
        &self,
        session: rw::BotSession,
        timeout: Duration,
    ) -> Result<rw::BotSession> {
        let mut request = self.request(rw::UpdateBotSessionRequest {
            name: session.name.clone(),
            bot_session: Some(session),
            update_mask: None,
        });
        request.set_timeout(timeout);
        self.block_on(self.bots().update_bot_session(request))
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status_error("UpdateBotSession", s))
    }
}

/// A bot session held by a worker: create it, [`poll`](Bot::poll) for leases, run them,
/// [`complete`](Bot::complete) each with its result.
pub struct Bot<'c> {
    client: &'c Client,
    session: rw::BotSession,
    poll_timeout: Duration,
    seen: HashSet<String>,
}

impl<'c> Bot<'c> {
    /// Creates a session for the bot `bot_id` (unique per worker), whose primary device has
    /// the platform `properties` the server matches actions against.
    pub fn create(
        client: &'c Client,
        bot_id: &str,
        properties: &[(&str, &str)],
        poll_timeout: Duration,
    ) -> Result<Bot<'c>> {
        let device = rw::Device {
            handle: bot_id.to_string(),
            properties: properties
                .iter()
                .map(|(k, v)| rw::device::Property {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        };
        let session = rw::BotSession {
            bot_id: bot_id.to_string(),
            status: rw::BotStatus::Ok as i32,
            worker: Some(rw::Worker {
                devices: vec![device],
                ..rw::Worker::default()
            }),
            ..rw::BotSession::default()
        };
        let session = client.create_bot_session(session, poll_timeout)?;
        Ok(Bot {
            client,
            session,
            poll_timeout,
            seen: HashSet::new(),
        })
    }

    /// The session as last returned by the server.
    pub fn session(&self) -> &rw::BotSession {
        &self.session
    }

    /// The leases handed out since the last call: those the last answer already holds, else
    /// after one `UpdateBotSession` (which waits up to the poll timeout for work).
    pub fn poll(&mut self) -> Result<Vec<LeaseAssignment>> {
        let fresh = self.take_new_leases()?;
        if !fresh.is_empty() {
            return Ok(fresh);
        }
        self.sync()?;
        self.take_new_leases()
    }

    /// Reports the lease `lease_id` completed with `result` (its outputs must already be in the
    /// CAS) in an immediate `UpdateBotSession`.
    pub fn complete(&mut self, lease_id: &str, result: &re::ActionResult) -> Result<()> {
        let any = prost_types::Any {
            type_url: format!("{TYPE_PREFIX}{ACTION_RESULT_TYPE}"),
            value: result.encode_to_vec(),
        };
        self.finish(lease_id, rpc::Status::default(), Some(any))
    }

    /// Reports the lease `lease_id` failed with a gRPC `code` and `message` (the action could
    /// not be run; an action that ran and failed is a completed lease with its exit code).
    /// BuildGrid retries the job (on this or another bot) for `UNAVAILABLE` and `INTERNAL`, and
    /// otherwise ends the execution with this status.
    pub fn fail(&mut self, lease_id: &str, code: tonic::Code, message: &str) -> Result<()> {
        let status = rpc::Status {
            code: code as i32,
            message: message.to_string(),
            details: Vec::new(),
        };
        self.finish(lease_id, status, None)
    }

    fn finish(
        &mut self,
        lease_id: &str,
        status: rpc::Status,
        result: Option<prost_types::Any>,
    ) -> Result<()> {
        let Some(lease) = self.session.leases.iter_mut().find(|l| l.id == lease_id) else {
            return Err(self.client.protocol_error(format!(
                "lease {lease_id} is not in bot session {}",
                self.session.name
            )));
        };
        lease.state = rw::LeaseState::Completed as i32;
        lease.status = Some(status);
        lease.result = result;
        self.sync()?;
        // Once reported, a lease with this id is new work again: the server retries a job
        // under the same id (BuildGrid does for UNAVAILABLE and INTERNAL failures).
        self.seen.remove(lease_id);
        Ok(())
    }

    /// Tells the server the bot is alive (its leases still running) without taking new
    /// work: call it while a lease runs longer than the server's keepalive timeout, or the
    /// server gives the bot up and hands its leases to another. Waits at most `timeout`;
    /// leases handed out meanwhile are returned by the next [`poll`](Bot::poll).
    pub fn keep_alive(&mut self, timeout: Duration) -> Result<()> {
        self.session = self
            .client
            .update_bot_session(self.session.clone(), timeout)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.session = self
            .client
            .update_bot_session(self.session.clone(), self.poll_timeout)?;
        Ok(())
    }

    /// Accepts the session's leases not seen before and says what they ask for.
    fn take_new_leases(&mut self) -> Result<Vec<LeaseAssignment>> {
        let mut out = Vec::new();
        for lease in &mut self.session.leases {
            let open = lease.state == rw::LeaseState::Pending as i32
                || lease.state == rw::LeaseState::Active as i32;
            if !open || self.seen.contains(&lease.id) {
                continue;
            }
            lease.state = rw::LeaseState::Active as i32;
            self.seen.insert(lease.id.clone());
            let work = lease_work(lease).map_err(|detail| self.client.protocol_error(detail))?;
            out.push(LeaseAssignment {
                id: lease.id.clone(),
                work,
            });
        }
        Ok(out)
    }
}

/// What `lease`'s payload asks for.
fn lease_work(lease: &rw::Lease) -> std::result::Result<LeaseWork, String> {
    let payload = lease
        .payload
        .as_ref()
        .ok_or_else(|| format!("lease {} has no payload", lease.id))?;
    let undecodable =
        |e: prost::DecodeError| format!("lease {}: undecodable payload: {e}", lease.id);
    if payload.type_url.ends_with(ACTION_TYPE) {
        Ok(LeaseWork::Action(
            re::Action::decode(payload.value.as_slice()).map_err(undecodable)?,
        ))
    } else if payload.type_url.ends_with(DIGEST_TYPE) {
        let d = re::Digest::decode(payload.value.as_slice()).map_err(undecodable)?;
        let digest = Digest::from_proto(&d).map_err(|e| format!("lease {}: {e}", lease.id))?;
        Ok(LeaseWork::ActionDigest(digest))
    } else {
        Err(format!(
            "lease {} carries a {}, not an Action",
            lease.id, payload.type_url
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(type_url: &str, value: Vec<u8>) -> rw::Lease {
        rw::Lease {
            id: "job-1".into(),
            payload: Some(prost_types::Any {
                type_url: type_url.into(),
                value,
            }),
            ..rw::Lease::default()
        }
    }

    #[test]
    fn lease_payloads_decode_to_work() {
        let action = re::Action {
            do_not_cache: true,
            ..re::Action::default()
        };
        let l = lease(
            &format!("{TYPE_PREFIX}{ACTION_TYPE}"),
            action.encode_to_vec(),
        );
        assert!(matches!(lease_work(&l), Ok(LeaseWork::Action(a)) if a.do_not_cache));
        let d = Digest::of_bytes(b"action");
        let l = lease(
            &format!("{TYPE_PREFIX}{DIGEST_TYPE}"),
            d.to_proto().encode_to_vec(),
        );
        assert!(matches!(lease_work(&l), Ok(LeaseWork::ActionDigest(x)) if x == d));
        let l = lease("type.googleapis.com/other.Thing", Vec::new());
        assert!(lease_work(&l).unwrap_err().contains("other.Thing"));
        let l = lease(&format!("{TYPE_PREFIX}{ACTION_TYPE}"), vec![0xff, 0xff]);
        assert!(lease_work(&l).unwrap_err().contains("undecodable"));
    }
}
