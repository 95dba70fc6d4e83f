//! Remote execution: `Execute`, following the operation stream to its end, and `WaitExecution`
//! when the stream breaks.

use std::time::Duration;

use prost::Message;

use crate::client::{Client, MAX_MESSAGE};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::proto::build::bazel::remote::execution::v2 as re;
use crate::proto::google::longrunning::{operation, Operation};

/// How many `WaitExecution` attempts resume a broken operation stream (backoff 0.25 s,
/// doubling up to 4 s: about 20 s in all).
const MAX_RESUMES: u32 = 8;

/// The type URL of an `ExecuteResponse` packed in an operation's `Any`.
const EXECUTE_RESPONSE_TYPE: &str = "build.bazel.remote.execution.v2.ExecuteResponse";

impl Client {
    fn execution(&self) -> re::execution_client::ExecutionClient<tonic::transport::Channel> {
        re::execution_client::ExecutionClient::new(self.channel())
            .max_decoding_message_size(MAX_MESSAGE)
    }

    /// Executes the action `action_digest` (the Action, its Command and input root must be in
    /// the CAS) and waits for it to finish. When the operation stream breaks (the connection
    /// dropped, the server restarted a stream), it is resumed with `WaitExecution`.
    ///
    /// The [`re::ExecuteResponse`] is returned as the server sent it: its `status` may report a
    /// failure to run the action (e.g. missing inputs), and its `result` the action's own exit
    /// code and outputs.
    pub fn execute(
        &self,
        action_digest: &Digest,
        skip_cache_lookup: bool,
    ) -> Result<re::ExecuteResponse> {
        let call = format!("Execute for action {action_digest}");
        let request = re::ExecuteRequest {
            instance_name: self.instance_name().to_string(),
            skip_cache_lookup,
            action_digest: Some(action_digest.to_proto()),
            execution_policy: None,
            results_cache_policy: None,
            digest_function: re::digest_function::Value::Sha256 as i32,
            inline_stdout: false,
            inline_stderr: false,
            inline_output_files: Vec::new(),
        };
        self.block_on(async {
            let mut stream = self
                .execution()
                .execute(self.request(request))
                .await
                .map_err(|s| self.status_error(call.clone(), s))?
                .into_inner();
            let mut operation_name: Option<String> = None;
            loop {
                let broken = match stream.message().await {
                    Ok(Some(op)) if op.done => return self.finished_operation(op),
                    Ok(Some(op)) => {
                        operation_name = Some(op.name);
                        continue;
                    }
                    Ok(None) => None,
                    Err(status) if is_transient(&status) => Some(status),
                    Err(status) => return Err(self.status_error(call.clone(), status)),
                };
                let Some(name) = operation_name.clone() else {
                    return Err(match broken {
                        Some(status) => self.status_error(call.clone(), status),
                        None => self.protocol_error(
                            "the operation stream ended before naming the operation",
                        ),
                    });
                };
                stream = self.resume(&name, broken).await?;
            }
        })
    }

    /// Resumes following the operation `name` with `WaitExecution`, retrying with backoff
    /// while the server is unreachable or restarting (about 20 s in all).
    async fn resume(
        &self,
        name: &str,
        mut last: Option<tonic::Status>,
    ) -> Result<tonic::Streaming<Operation>> {
        let call = format!("WaitExecution for {name}");
        for attempt in 0..MAX_RESUMES {
            let backoff = Duration::from_millis(250 << attempt.min(4));
            tokio::time::sleep(backoff).await;
            let request = self.request(re::WaitExecutionRequest {
                name: name.to_string(),
            });
            match self.execution().wait_execution(request).await {
                Ok(answer) => return Ok(answer.into_inner()),
                Err(status) if is_transient(&status) => last = Some(status),
                Err(status) => return Err(self.status_error(call, status)),
            }
        }
        Err(match last {
            Some(status) => self.status_error(call, status),
            None => self.protocol_error(format!("operation {name} kept ending unfinished")),
        })
    }

    /// The `ExecuteResponse` of a finished operation, or its error.
    fn finished_operation(&self, op: Operation) -> Result<re::ExecuteResponse> {
        match op.result {
            Some(operation::Result::Response(any)) => {
                if !any.type_url.ends_with(EXECUTE_RESPONSE_TYPE) {
                    return Err(self.protocol_error(format!(
                        "operation {} finished with a {}, not an ExecuteResponse",
                        op.name, any.type_url
                    )));
                }
                re::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| {
                    self.protocol_error(format!("undecodable ExecuteResponse of {}: {e}", op.name))
                })
            }
            Some(operation::Result::Error(status)) => Err(Error::Server {
                url: self.endpoint().url().to_string(),
                call: format!("the execution of operation {}", op.name),
                code: tonic::Code::from(status.code),
                message: status.message,
            }),
            None => {
                Err(self.protocol_error(format!("operation {} is done without a result", op.name)))
            }
        }
    }
}

/// Whether a failed stream is worth resuming: the connection or the server went away.
fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Internal
            | tonic::Code::Unknown
            | tonic::Code::Aborted
    )
}
