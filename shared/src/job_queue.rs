//! Sync jobs sent to the sync worker through SQS.
//!
//! The API and the `auto-sync-trigger` schedule create `cloud_sync_jobs` rows. They then send
//! the worker a small message naming the row: `{"tenant_id":"…","job_id":"…"}`. The row holds
//! the state; the message only says which row to run, so a duplicate delivery (SQS is
//! at-least-once) finds the job already claimed. Local runs have no queue: the local server
//! runs the worker in-process, so [`JobQueue::Disabled`] sends nothing and says so.
//!
//! The queue must be a standard queue: FIFO queues refuse a per-message delay.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::db::{JobId, TenantId};

/// URL of the sync-job queue. Absent or empty: no queue ([`JobQueue::Disabled`]).
pub const SYNC_QUEUE_URL_ENV: &str = "QUODSI_SYNC_QUEUE_URL";

/// SQS's longest per-message delay (`DelaySeconds`).
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// The body of one queue message: which job to run, and whose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobMessage {
    pub tenant_id: TenantId,
    pub job_id: JobId,
}

impl JobMessage {
    /// The message body: `{"tenant_id":"…","job_id":"…"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("two UUIDs always serialise")
    }

    /// Reads a message body (the worker's side). The body must be a JSON object: serde would
    /// also take `["<tenant>","<job>"]`, which no sender writes. Fields the message does not
    /// know are ignored, so a newer sender can add one without breaking an older worker.
    pub fn parse(body: &str) -> Result<JobMessage, MalformedMessage> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| MalformedMessage { problem: e.to_string() })?;
        let found = match &value {
            serde_json::Value::Object(_) => None,
            serde_json::Value::Array(_) => Some("an array"),
            serde_json::Value::String(_) => Some("a string"),
            serde_json::Value::Number(_) => Some("a number"),
            serde_json::Value::Bool(_) => Some("a boolean"),
            serde_json::Value::Null => Some("null"),
        };
        if let Some(found) = found {
            return Err(MalformedMessage { problem: format!("expected a JSON object, found {found}") });
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let problem = if path == "." { inner.to_string() } else { format!("`{path}`: {inner}") };
            MalformedMessage { problem }
        })
    }
}

/// A queue message that is not a [`JobMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sync job message is malformed: {problem}")]
pub struct MalformedMessage {
    pub problem: String,
}

/// Why a job could not be queued. No variant carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("environment variable {var} {problem}")]
    Env { var: &'static str, problem: &'static str },
    #[error("cannot send sync job {job_id} to queue {queue_url}: {message}")]
    Send { queue_url: String, job_id: JobId, message: String },
    #[error("cannot set up the AWS client of the sync queue")]
    Aws(#[from] crate::aws::AwsSetupError),
}

/// What [`JobQueue::send`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The message is on the queue and becomes visible after `delay`. That is the delay asked
    /// for, rounded up to whole seconds and at most [`MAX_DELAY`]. `clamped` says the delay
    /// asked for was longer and was cut to [`MAX_DELAY`].
    Queued { message_id: Option<String>, delay: Duration, clamped: bool },
    /// No queue is configured (local runs): nothing was sent.
    Disabled,
}

/// Where sync jobs go: an SQS queue, or nowhere (local runs).
#[derive(Clone)]
pub enum JobQueue {
    Sqs { client: aws_sdk_sqs::Client, queue_url: String },
    Disabled,
}

impl fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobQueue::Sqs { queue_url, .. } => {
                f.debug_struct("Sqs").field("queue_url", queue_url).finish_non_exhaustive()
            }
            JobQueue::Disabled => f.write_str("Disabled"),
        }
    }
}

impl JobQueue {
    /// The queue named by `QUODSI_SYNC_QUEUE_URL`, with a client from [`crate::aws::sdk_config`]
    /// (region, credentials, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SQS`, `AWS_CA_BUNDLE`);
    /// [`JobQueue::Disabled`] when the variable is absent or empty.
    pub async fn from_env() -> Result<JobQueue, QueueError> {
        JobQueue::from_lookup(|name| std::env::var(name).ok()).await
    }

    /// [`JobQueue::from_env`] with `QUODSI_SYNC_QUEUE_URL` read through `lookup`, so tests need
    /// not change the process environment (the AWS settings still come from the environment).
    pub async fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<JobQueue, QueueError> {
        let Some(queue_url) = lookup(SYNC_QUEUE_URL_ENV).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
            return Ok(JobQueue::Disabled);
        };
        if !(queue_url.starts_with("https://") || queue_url.starts_with("http://")) {
            return Err(QueueError::Env {
                var: SYNC_QUEUE_URL_ENV,
                problem: "must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)",
            });
        }
        Ok(JobQueue::sqs(aws_sdk_sqs::Client::new(crate::aws::sdk_config().await?), queue_url))
    }

    /// The queue at `queue_url`, reached with `client`.
    pub fn sqs(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> JobQueue {
        JobQueue::Sqs { client, queue_url: queue_url.into() }
    }

    pub fn is_enabled(&self) -> bool {
        matches!(self, JobQueue::Sqs { .. })
    }

    /// Sends `message`, to become visible to the worker after `delay`. SQS delays whole seconds
    /// up to 15 minutes: a fraction of a second is rounded up (never earlier than asked), and a
    /// longer delay is cut to [`MAX_DELAY`]. The outcome tells which delay was used, so a caller
    /// that wanted longer can hold the job back another way (the job row's schedule). A
    /// [`JobQueue::Disabled`] queue sends nothing and answers [`SendOutcome::Disabled`].
    pub async fn send(&self, message: &JobMessage, delay: Duration) -> Result<SendOutcome, QueueError> {
        let JobQueue::Sqs { client, queue_url } = self else {
            tracing::debug!(job_id = %message.job_id, "no sync queue configured; job not sent");
            return Ok(SendOutcome::Disabled);
        };
        let (delay, clamped) = sqs_delay(delay);
        let seconds = i32::try_from(delay.as_secs()).expect("at most 900");
        let sent = client
            .send_message()
            .queue_url(queue_url)
            .message_body(message.to_json())
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| QueueError::Send {
                queue_url: queue_url.clone(),
                job_id: message.job_id,
                // Error responses of SendMessage carry codes and messages, never credentials.
                message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
            })?;
        if clamped {
            tracing::info!(job_id = %message.job_id, "sync job delay cut to SQS's maximum of 900 s");
        }
        Ok(SendOutcome::Queued { message_id: sent.message_id, delay, clamped })
    }
}

/// The delay SQS will apply: whole seconds, rounded up, at most [`MAX_DELAY`]; and whether it
/// was cut.
fn sqs_delay(asked: Duration) -> (Duration, bool) {
    let seconds = asked.as_secs().saturating_add(u64::from(asked.subsec_nanos() > 0));
    if seconds > MAX_DELAY.as_secs() { (MAX_DELAY, true) } else { (Duration::from_secs(seconds), false) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn message() -> JobMessage {
        JobMessage {
            tenant_id: TenantId(Uuid::parse_str("6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b").unwrap()),
            job_id: JobId(Uuid::parse_str("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d").unwrap()),
        }
    }

    #[test]
    fn a_message_serialises_as_two_named_uuids() {
        // Act
        let json = message().to_json();

        // Assert
        assert_eq!(
            json,
            r#"{"tenant_id":"6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b","job_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}"#
        );
        assert_eq!(JobMessage::parse(&json), Ok(message()));
    }

    #[test]
    fn a_message_with_an_extra_field_still_parses() {
        // Arrange
        let body = r#"{"job_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","version":2,
                      "tenant_id":"6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"}"#;

        // Act
        let got = JobMessage::parse(body);

        // Assert
        assert_eq!(got, Ok(message()));
    }

    #[test]
    fn a_malformed_body_is_an_error_naming_the_problem() {
        // Arrange
        let cases = [
            ("", "EOF while parsing"),
            ("not json", "expected"),
            ("[]", "expected a JSON object, found an array"),
            (r#"["6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b","0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]"#, "found an array"),
            ("null", "found null"),
            (r#"{"tenant_id":"6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b"}"#, "missing field `job_id`"),
            (r#"{"job_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}"#, "missing field `tenant_id`"),
            (r#"{"tenant_id":"tenant-7","job_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}"#, "`tenant_id`: UUID"),
            (r#"{"tenant_id":"6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b","job_id":42}"#, "`job_id`: invalid type"),
            (
                r#"{"tenant_id":"6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b","job_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"} x"#,
                "trailing",
            ),
        ];

        for (body, problem) in cases {
            // Act
            let got = JobMessage::parse(body);

            // Assert
            let err = got.expect_err(body).to_string();
            assert!(err.starts_with("sync job message is malformed: "), "{body}: {err}");
            assert!(err.contains(problem), "{body}: {err:?} should name {problem:?}");
        }
    }

    #[test]
    fn delays_are_whole_seconds_rounded_up_and_cut_at_fifteen_minutes() {
        // Arrange
        let cases = [
            (Duration::ZERO, 0, false),
            (Duration::from_millis(1), 1, false),
            (Duration::from_millis(1500), 2, false),
            (Duration::from_secs(900), 900, false),
            (Duration::from_millis(900_001), 900, true),
            (Duration::from_secs(3600), 900, true),
            (Duration::MAX, 900, true),
        ];

        for (asked, seconds, clamped) in cases {
            // Act
            let got = sqs_delay(asked);

            // Assert
            assert_eq!(got, (Duration::from_secs(seconds), clamped), "{asked:?}");
        }
    }

    #[tokio::test]
    async fn an_absent_or_empty_queue_url_disables_the_queue() {
        for value in [None, Some(""), Some("  ")] {
            // Act
            let got = JobQueue::from_lookup(|_| value.map(str::to_owned)).await.unwrap();

            // Assert
            assert!(matches!(got, JobQueue::Disabled), "{value:?}");
            assert!(!got.is_enabled());
        }
    }

    #[tokio::test]
    async fn a_queue_url_that_is_not_a_url_is_refused() {
        // Act
        let got = JobQueue::from_lookup(|_| Some("quodsi-sync-jobs".to_owned())).await;

        // Assert
        let err = got.unwrap_err().to_string();
        assert!(err.starts_with("environment variable QUODSI_SYNC_QUEUE_URL must be an SQS queue URL"), "{err}");
    }

    #[tokio::test]
    async fn a_disabled_queue_sends_nothing_and_says_so() {
        // Act
        let got = JobQueue::Disabled.send(&message(), Duration::from_secs(5)).await;

        // Assert
        assert_eq!(got.unwrap(), SendOutcome::Disabled);
    }
}
