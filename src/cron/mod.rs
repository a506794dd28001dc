//! The sans-IO core of the cron service (`cron.*` methods and the `cron` event).
//!
//! Everything here is pure: time is passed in as `now_ms`, nothing touches a clock, a socket,
//! the database or a thread. The gateway owns a [`CronBook`] on one shard, persists its jobs
//! (JSON blobs, [`Job`] serialises to the original's field names) and run-log entries
//! ([`RunLogEntry`]), arms a timer at [`CronBook::next_wake`], and executes what
//! [`CronBook::begin_run`] hands it.
//!
//! * [`schedule`]: `at` / `every` / `cron` schedules and the next-run computation.
//! * [`job`]: the job type, `cron.add` normalisation, `cron.update` patches, run bookkeeping.
//! * [`book`]: the in-memory job set and the method responses built from it.
//! * [`runs`]: run-log entries and the `cron.runs` page.
//! * [`events`]: the payloads of the `cron` broadcast.

pub mod book;
pub mod events;
pub mod job;
pub mod runs;
pub mod schedule;
pub mod service;

pub use book::{CronBook, RunFinish, RunStart};
pub use job::{Job, JobState, RunOutcome, RunStatus};
pub use runs::RunLogEntry;
pub use schedule::Schedule;

use crate::proto::errors::ErrorShape;
use serde_json::json;

/// A refused cron request. Every variant answers `INVALID_REQUEST`, as the original does (it
/// has no NOT_FOUND code; an unknown id carries `details.code = CRON_JOB_NOT_FOUND`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CronError {
    /// `invalid <method> params: <reason>`.
    #[error("invalid {method} params: {reason}")]
    Invalid {
        method: &'static str,
        reason: String,
    },
    /// No job with this id.
    #[error("Automation not found: {0}. List automations and retry with a current job id. For cross-session management, use a fresh authenticated configured channel owner or Control UI administrator turn or the Automations page.")]
    NotFound(String),
}

impl CronError {
    pub fn invalid(method: &'static str, reason: impl Into<String>) -> Self {
        CronError::Invalid {
            method,
            reason: reason.into(),
        }
    }

    /// Always `INVALID_REQUEST`: the original reports every cron refusal with that code.
    pub fn code(&self) -> &'static str {
        crate::proto::errors::code::INVALID_REQUEST
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The `res.error` object, with the `CRON_JOB_NOT_FOUND` details clients branch on.
    pub fn to_error_shape(&self) -> ErrorShape {
        let shape = ErrorShape::invalid(self.message());
        match self {
            CronError::NotFound(id) => {
                shape.with_details(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}))
            }
            CronError::Invalid { .. } => shape,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_carries_details() {
        let e = CronError::NotFound("abc".into()).to_error_shape();
        assert_eq!(e.code, "INVALID_REQUEST");
        assert!(e.message.starts_with("Automation not found: abc."));
        assert_eq!(e.details.unwrap()["code"], "CRON_JOB_NOT_FOUND");
    }

    #[test]
    fn invalid_message_format() {
        let e = CronError::invalid("cron.add", "automation name is required");
        assert_eq!(
            e.message(),
            "invalid cron.add params: automation name is required"
        );
    }
}
