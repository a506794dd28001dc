//! Payloads of the `cron` broadcast event (`CronEvent` in the original's service, with `job`
//! projected to its public form).

use super::job::Job;
use super::runs::RunLogEntry;
use serde_json::{json, Value};

fn public_job(job: &Job) -> Value {
    serde_json::to_value(job).unwrap_or(Value::Null)
}

/// `{jobId, action:"added", job, nextRunAtMs}`.
pub fn added(job: &Job) -> Value {
    json!({"jobId": job.id, "action": "added", "job": public_job(job), "nextRunAtMs": job.state.next_run_at_ms})
}

/// `{jobId, action:"updated", job, nextRunAtMs}`.
pub fn updated(job: &Job) -> Value {
    json!({"jobId": job.id, "action": "updated", "job": public_job(job), "nextRunAtMs": job.state.next_run_at_ms})
}

/// `{jobId, action:"removed", job}`.
pub fn removed(job: &Job) -> Value {
    json!({"jobId": job.id, "action": "removed", "job": public_job(job)})
}

/// `{jobId, action:"started", job, runAtMs}`.
pub fn started(job: &Job, run_at_ms: u64) -> Value {
    json!({"jobId": job.id, "action": "started", "job": public_job(job), "runAtMs": run_at_ms})
}

/// The run-log entry's fields plus `job` (its state after the run; absent when the run
/// deleted the job).
pub fn finished(entry: &RunLogEntry, job: Option<&Job>) -> Value {
    let mut v = serde_json::to_value(entry).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("ts");
        o.remove("jobName");
        if let Some(job) = job {
            o.insert("job".into(), public_job(job));
        }
    }
    v
}
