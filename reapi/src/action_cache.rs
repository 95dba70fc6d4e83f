//! The action cache: results of actions by action digest.

use crate::client::{Client, MAX_MESSAGE};
use crate::digest::Digest;
use crate::error::Result;
use crate::proto::build::bazel::remote::execution::v2 as re;

impl Client {
    fn action_cache(
        &self,
    ) -> re::action_cache_client::ActionCacheClient<tonic::transport::Channel> {
        re::action_cache_client::ActionCacheClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The cached result of the action `action_digest`, or `None` when there is none.
    ///
    /// REAPI results carry no signature: whoever may write the action cache decides what this
    /// returns, so callers that need trust must check the result by other means.
    pub fn get_action_result(&self, action_digest: &Digest) -> Result<Option<re::ActionResult>> {
        let request = self.request(re::GetActionResultRequest {
            instance_name: self.instance_name().to_string(),
            action_digest: Some(action_digest.to_proto()),
            inline_stdout: false,
            inline_stderr: false,
            inline_output_files: Vec::new(),
            digest_function: re::digest_function::Value::Sha256 as i32,
        });
        match self.block_on(self.action_cache().get_action_result(request)) {
            Ok(answer) => Ok(Some(answer.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => {
                Err(self.status_error(format!("GetActionResult for {action_digest}"), status))
            }
        }
    }

    /// Stores `result` as the result of the action `action_digest` (its outputs must already be
    /// in the CAS); returns what the server stored.
    pub fn update_action_result(
        &self,
        action_digest: &Digest,
        result: re::ActionResult,
    ) -> Result<re::ActionResult> {
        let request = self.request(re::UpdateActionResultRequest {
            instance_name: self.instance_name().to_string(),
            action_digest: Some(action_digest.to_proto()),
            action_result: Some(result),
            results_cache_policy: None,
            digest_function: re::digest_function::Value::Sha256 as i32,
        });
        self.block_on(self.action_cache().update_action_result(request))
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status_error(format!("UpdateActionResult for {action_digest}"), s))
    }
}
