//! `CronBook`: the in-memory job set the owner shard keeps, and the `cron.*` responses built
//! from it. Persistence and execution stay outside: callers store what changed and run what
//! [`CronBook::begin_run`] starts.

use super::events;
use super::job::{Job, RunOutcome};
use super::runs::{completion_status, RunLogEntry};
use super::CronError;
use serde_json::{json, Value};

/// The answer to `cron.run` / a due tick.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStart {
    /// The run is reserved (`state.runningAtMs` set). Execute `job`, then call
    /// [`CronBook::finish_run`]. `response` is the `cron.run` answer
    /// (`{ok:true, enqueued:true, runId}`), `event` the `started` broadcast.
    Started {
        job: Box<Job>,
        run_id: String,
        run_at_ms: u64,
        response: Value,
        event: Value,
    },
    /// Nothing runs: `{ok:true, ran:false, reason}` with `already-running`, `not-due` or
    /// `disabled`.
    NotRun {
        reason: &'static str,
        response: Value,
    },
}

/// What a finished run produced: the entry to append to the run log, the `finished`
/// broadcast, and the job's new state (`None` when the run deleted it).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinish {
    pub entry: RunLogEntry,
    pub event: Value,
    pub job: Option<Job>,
    pub deleted: bool,
}

/// Jobs in insertion order; few enough (hundreds) that linear scans are the simple choice.
#[derive(Debug, Clone, Default)]
pub struct CronBook {
    jobs: Vec<Job>,
    default_agent_id: String,
    run_seq: u64,
    /// Random per book: revisions of two processes never compare equal.
    epoch: String,
    /// Bumped whenever the set of jobs or a definition changes (`snapshotRevision`, which
    /// the CLI's paging checks so it restarts when the inventory moves under it).
    revision: u64,
}

fn job_id(params: &Value, method: &'static str) -> Result<String, CronError> {
    params
        .get("id")
        .or_else(|| params.get("jobId"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| CronError::invalid(method, "missing id"))
}

impl CronBook {
    pub fn new(default_agent_id: impl Into<String>) -> Self {
        CronBook {
            jobs: Vec::new(),
            default_agent_id: default_agent_id.into(),
            run_seq: 0,
            epoch: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            revision: 0,
        }
    }

    /// Rebuilds the book from stored jobs. Runs interrupted by a restart are released.
    pub fn from_jobs(default_agent_id: impl Into<String>, mut jobs: Vec<Job>) -> Self {
        for j in &mut jobs {
            j.state.running_at_ms = None;
        }
        CronBook {
            jobs,
            ..Self::new(default_agent_id)
        }
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub fn get(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// Puts back a job's previous definition (a write that did not become durable), keeping
    /// its live run state (a run may have started or finished meanwhile), or re-adds a removed
    /// job (not running: a run that ended while it was gone was not recorded).
    pub fn restore(&mut self, mut job: Job) {
        self.revision += 1;
        match self.jobs.iter_mut().find(|j| j.id == job.id) {
            Some(j) => {
                job.state = j.state.clone();
                *j = job;
            }
            None => {
                job.state.running_at_ms = None;
                self.jobs.push(job);
            }
        }
    }

    /// The agent used by jobs that name none (follows config reloads).
    pub fn set_default_agent(&mut self, id: &str) {
        self.default_agent_id = id.to_owned();
    }

    /// Drops a job whose add did not become durable.
    pub fn forget(&mut self, id: &str) {
        self.revision += 1;
        self.jobs.retain(|j| j.id != id);
    }

    fn get_mut(&mut self, id: &str) -> Result<&mut Job, CronError> {
        self.jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| CronError::NotFound(id.to_owned()))
    }

    /// `cron.add`. The response is `Job::read_view()` plus `deliveryPreview`
    /// ([`CronBook::add_response`]); the broadcast is [`events::added`].
    pub fn add(&mut self, params: &Value, now_ms: u64) -> Result<Job, CronError> {
        let job = Job::create(params, uuid::Uuid::new_v4().to_string(), now_ms)?;
        self.revision += 1;
        self.jobs.push(job.clone());
        Ok(job)
    }

    /// `{...readView, deliveryPreview}`.
    pub fn add_response(job: &Job) -> Value {
        let mut v = job.read_view();
        if let Some(o) = v.as_object_mut() {
            o.insert("deliveryPreview".into(), job.delivery_preview());
        }
        v
    }

    /// `cron.update {id|jobId, patch, expectedConfigRevision?}`; responds `read_view()`.
    pub fn update(&mut self, params: &Value, now_ms: u64) -> Result<Job, CronError> {
        let id = job_id(params, "cron.update")?;
        let patch = params.get("patch").ok_or_else(|| {
            CronError::invalid("cron.update", "must have required property 'patch'")
        })?;
        let job = self.get_mut(&id)?;
        if let Some(expected) = params.get("expectedConfigRevision").and_then(Value::as_str) {
            if expected != job.config_revision() {
                return Err(CronError::invalid(
                    "cron.update",
                    "cron job definition no longer matches the loaded version; review the latest version before retrying",
                ));
            }
        }
        job.apply_patch(patch, now_ms)?;
        let job = job.clone();
        self.revision += 1;
        Ok(job)
    }

    /// `cron.remove {id|jobId}`; responds [`CronBook::remove_response`].
    pub fn remove(&mut self, params: &Value) -> Result<Job, CronError> {
        let id = job_id(params, "cron.remove")?;
        let at = self
            .jobs
            .iter()
            .position(|j| j.id == id)
            .ok_or(CronError::NotFound(id))?;
        self.revision += 1;
        Ok(self.jobs.remove(at))
    }

    pub fn remove_response() -> Value {
        json!({"ok": true, "removed": true})
    }

    /// `cron.list`: `{jobs, total, offset, limit, hasMore, nextOffset, deliveryPreviews}`
    /// (`compact` and `includeDeliveryPreviews:false` honoured). Filters: `includeDisabled`
    /// / `enabled`, `scheduleKind`, `lastRunStatus`, `agentId`, `query`; sort by `sortBy`
    /// (`nextRunAtMs` default, jobs without a next run last) then id.
    pub fn list(&self, params: &Value) -> Value {
        let s = |k: &str| params.get(k).and_then(Value::as_str);
        let enabled_filter = match s("enabled") {
            Some(e @ ("all" | "enabled" | "disabled")) => e,
            _ if params.get("includeDisabled") == Some(&Value::Bool(true)) => "all",
            _ => "enabled",
        };
        let kind = s("scheduleKind").unwrap_or("all");
        let last = s("lastRunStatus").unwrap_or("all");
        let agent = s("agentId").map(str::to_ascii_lowercase);
        let query = s("query").unwrap_or("").trim().to_lowercase();
        let mut jobs: Vec<&Job> = self
            .jobs
            .iter()
            .filter(|j| match enabled_filter {
                "enabled" => j.enabled,
                "disabled" => !j.enabled,
                _ => true,
            })
            .filter(|j| kind == "all" || j.schedule.kind() == kind)
            .filter(|j| last == "all" || j.last_status().map_or("unknown", |s| s.as_str()) == last)
            .filter(|j| {
                agent
                    .as_deref()
                    .is_none_or(|a| j.effective_agent_id(&self.default_agent_id) == a)
            })
            .filter(|j| {
                query.is_empty() || {
                    let hay = [
                        j.id.as_str(),
                        &j.name,
                        j.description.as_deref().unwrap_or(""),
                        j.agent_id.as_deref().unwrap_or(""),
                        j.display_name.as_deref().unwrap_or(""),
                    ]
                    .join(" ")
                    .to_lowercase();
                    hay.contains(&query)
                }
            })
            .collect();
        sort_jobs(
            &mut jobs,
            s("sortBy").unwrap_or("nextRunAtMs"),
            s("sortDir") == Some("desc"),
        );
        let total = jobs.len();
        let num = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite())
                .map(f64::floor)
        };
        let offset = num("offset").unwrap_or(0.0).max(0.0).min(total as f64) as usize;
        let default_limit = if total == 0 { 50.0 } else { total as f64 };
        let limit = num("limit").unwrap_or(default_limit).clamp(1.0, 200.0) as usize;
        let page: Vec<&Job> = jobs.into_iter().skip(offset).take(limit).collect();
        let compact = params.get("compact") == Some(&Value::Bool(true));
        let views: Vec<Value> = page
            .iter()
            .map(|j| {
                let mut v = if compact {
                    compact_view(j)
                } else {
                    j.read_view()
                };
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "effectiveAgentId".into(),
                        json!(j.effective_agent_id(&self.default_agent_id)),
                    );
                }
                v
            })
            .collect();
        let next = offset + page.len();
        let mut out = json!({
            "jobs": views,
            "total": total,
            "offset": offset,
            "limit": limit,
            "hasMore": next < total,
            "nextOffset": if next < total { json!(next) } else { Value::Null },
            "snapshotRevision": format!("{}-{}", self.epoch, self.revision),
        });
        if !compact && params.get("includeDeliveryPreviews") != Some(&Value::Bool(false)) {
            let previews: serde_json::Map<String, Value> = page
                .iter()
                .map(|j| (j.id.clone(), j.delivery_preview()))
                .collect();
            out["deliveryPreviews"] = Value::Object(previews);
        }
        out
    }

    /// `cron.status`: `{enabled, triggersEnabled, storePath, storage, sqlitePath, jobs,
    /// nextWakeAtMs}`.
    pub fn status(&self, scheduler_enabled: bool, sqlite_path: &str) -> Value {
        json!({
            "enabled": scheduler_enabled,
            "triggersEnabled": false,
            "storePath": sqlite_path,
            "storage": "sqlite",
            "sqlitePath": sqlite_path,
            "jobs": self.jobs.len(),
            "nextWakeAtMs": if scheduler_enabled { json!(self.next_wake()) } else { Value::Null },
        })
    }

    /// Ids of the jobs whose slot has come, earliest first.
    pub fn due(&self, now_ms: u64) -> Vec<String> {
        let mut due: Vec<&Job> = self.jobs.iter().filter(|j| j.is_due(now_ms)).collect();
        due.sort_by_key(|j| j.state.next_run_at_ms);
        due.into_iter().map(|j| j.id.clone()).collect()
    }

    /// When the timer should fire next: the earliest `nextRunAtMs` of enabled, idle jobs.
    pub fn next_wake(&self) -> Option<u64> {
        self.jobs
            .iter()
            .filter(|j| j.enabled && j.state.running_at_ms.is_none())
            .filter_map(|j| j.state.next_run_at_ms.filter(|&t| t > 0))
            .min()
    }

    /// Starts a run. `mode` is `force` (`cron.run` default: runs even when disabled or not
    /// due), `if-enabled`, or `due` (the timer, and `cron run --due`).
    pub fn begin_run(&mut self, id: &str, now_ms: u64, mode: &str) -> Result<RunStart, CronError> {
        self.run_seq += 1;
        let seq = self.run_seq;
        let job = self.get_mut(id)?;
        let not_run = |reason: &'static str| {
            Ok(RunStart::NotRun {
                reason,
                response: json!({"ok": true, "ran": false, "reason": reason}),
            })
        };
        if mode == "if-enabled" && !job.enabled {
            return not_run("disabled");
        }
        if job.state.running_at_ms.is_some() {
            return not_run("already-running");
        }
        let forced = mode == "force" || mode == "if-enabled";
        if !forced && !job.is_due(now_ms) {
            return not_run("not-due");
        }
        job.state.running_at_ms = Some(now_ms);
        let run_id = format!("manual:{id}:{now_ms}:{seq}");
        Ok(RunStart::Started {
            event: events::started(job, now_ms),
            response: json!({"ok": true, "enqueued": true, "runId": run_id}),
            job: Box::new(job.clone()),
            run_id,
            run_at_ms: now_ms,
        })
    }

    /// Records a finished run: job state, one-shot deletion, the run-log entry and the
    /// `finished` event.
    pub fn finish_run(
        &mut self,
        id: &str,
        run_id: &str,
        started_at_ms: u64,
        outcome: &RunOutcome,
        now_ms: u64,
    ) -> Result<RunFinish, CronError> {
        let job = self.get_mut(id)?;
        let deleted = job.record_run(outcome, started_at_ms, now_ms);
        let snapshot = job.clone();
        if deleted {
            self.jobs.retain(|j| j.id != id);
            self.revision += 1;
        }
        let delivery_status = snapshot.state.last_delivery_status.clone();
        let entry = RunLogEntry {
            ts: now_ms,
            job_id: id.to_owned(),
            action: "finished".into(),
            status: Some(outcome.status),
            completion_status: Some(
                completion_status(outcome.status, delivery_status.as_deref()).into(),
            ),
            error: outcome.error.clone(),
            summary: outcome.summary.clone(),
            delivered: snapshot.state.last_delivered,
            delivery_status,
            session_id: outcome.session_id.clone(),
            session_key: outcome.session_key.clone(),
            run_id: Some(run_id.to_owned()),
            run_at_ms: Some(started_at_ms),
            duration_ms: snapshot.state.last_duration_ms,
            next_run_at_ms: snapshot.state.next_run_at_ms,
            model: outcome.model.clone(),
            provider: outcome.provider.clone(),
            job_name: None,
        };
        Ok(RunFinish {
            event: events::finished(&entry, Some(&snapshot)),
            entry,
            job: (!deleted).then_some(snapshot),
            deleted,
        })
    }
}

/// `sortCronJobs`.
fn sort_jobs(jobs: &mut [&Job], by: &str, desc: bool) {
    jobs.sort_by(|a, b| {
        use std::cmp::Ordering;
        let cmp = match by {
            "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
            "updatedAtMs" => a.updated_at_ms.cmp(&b.updated_at_ms),
            _ => match (a.state.next_run_at_ms, b.state.next_run_at_ms) {
                (Some(x), Some(y)) => x.cmp(&y),
                // Jobs without a next run go last whatever the direction.
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
        };
        let cmp = if desc { cmp.reverse() } else { cmp };
        cmp.then_with(|| a.id.cmp(&b.id))
    });
}

/// `compactCronListJob`.
fn compact_view(j: &Job) -> Value {
    let iso = |t: Option<u64>| t.map_or(Value::Null, |t| json!(super::schedule::ms_to_iso(t)));
    let mut v = json!({"id": j.id, "name": j.name});
    let o = v.as_object_mut().unwrap_or_else(|| unreachable!());
    if let Some(a) = &j.agent_id {
        o.insert("agentId".into(), json!(a));
    }
    o.insert("updatedAtMs".into(), json!(j.updated_at_ms));
    if let Some(d) = &j.display_name {
        o.insert("displayName".into(), json!(d));
    }
    o.insert("enabled".into(), json!(j.enabled));
    o.insert("nextRunAt".into(), iso(j.state.next_run_at_ms));
    o.insert("nextRunAtMs".into(), json!(j.state.next_run_at_ms));
    o.insert("scheduleKind".into(), json!(j.schedule.kind()));
    o.insert("schedule".into(), json!(j.schedule));
    o.insert("lastRunAt".into(), iso(j.state.last_run_at_ms));
    o.insert("lastRunAtMs".into(), json!(j.state.last_run_at_ms));
    o.insert(
        "lastRunStatus".into(),
        json!(j.last_status().map(|s| s.as_str())),
    );
    o.insert("lastRunError".into(), json!(j.state.last_error));
    if let Some(r) = j.state.running_at_ms {
        o.insert("runningAtMs".into(), json!(r));
    }
    if let Some(d) = &j.state.last_delivery_status {
        o.insert("lastDeliveryStatus".into(), json!(d));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cron::job::RunStatus;
    use crate::cron::runs::{runs_page, RunsQuery};

    const NOW: u64 = 1_772_368_200_000; // 2026-03-01T12:30:00Z

    fn every(book: &mut CronBook, name: &str, every_ms: u64) -> Job {
        book.add(
            &json!({"name": name, "schedule": {"kind":"every","everyMs": every_ms}, "payload": {"kind":"systemEvent","text":"t"}}),
            NOW,
        )
        .unwrap()
    }

    #[test]
    fn add_list_sorted_and_paged() {
        let mut b = CronBook::new("main");
        let slow = every(&mut b, "slow", 3_600_000);
        let fast = every(&mut b, "fast", 60_000);
        let off = every(&mut b, "off", 1000);
        b.update(&json!({"id": off.id, "patch": {"enabled": false}}), NOW)
            .unwrap();
        let v = b.list(&json!({"includeDisabled": false, "limit": 200, "offset": 0}));
        assert_eq!(v["total"], 2);
        assert_eq!(v["jobs"][0]["id"], json!(fast.id));
        assert_eq!(v["jobs"][1]["id"], json!(slow.id));
        assert_eq!(v["jobs"][0]["effectiveAgentId"], "main");
        assert_eq!(v["hasMore"], false);
        assert_eq!(v["nextOffset"], Value::Null);
        assert_eq!(v["deliveryPreviews"][&fast.id]["label"], "not requested");
        let v = b.list(&json!({"includeDisabled": true, "limit": 1, "offset": 1}));
        assert_eq!(v["total"], 3);
        assert_eq!(v["jobs"][0]["id"], json!(slow.id));
        assert_eq!(v["hasMore"], true);
        assert_eq!(v["nextOffset"], 2);
        // Disabled (no next run) sorts last.
        let v = b.list(&json!({"enabled": "all"}));
        assert_eq!(v["jobs"][2]["name"], "off");
        // Not a hex string: job ids are UUIDs and the query matches ids too.
        let v = b.list(&json!({"enabled": "all", "query": "FAST"}));
        assert_eq!(v["total"], 1);
        let v = b.list(&json!({"compact": true}));
        assert_eq!(v["jobs"][0]["scheduleKind"], "every");
        assert!(v.get("deliveryPreviews").is_none());
    }

    #[test]
    fn unknown_ids_and_missing_id() {
        let mut b = CronBook::new("main");
        let e = b
            .update(&json!({"id": "nope", "patch": {}}), NOW)
            .unwrap_err();
        assert_eq!(e, CronError::NotFound("nope".into()));
        let e = b.remove(&json!({"jobId": "nope"})).unwrap_err();
        assert_eq!(e, CronError::NotFound("nope".into()));
        let e = b.remove(&json!({})).unwrap_err();
        assert_eq!(e.message(), "invalid cron.remove params: missing id");
        assert!(matches!(
            b.begin_run("nope", NOW, "force"),
            Err(CronError::NotFound(_))
        ));
    }

    #[test]
    fn remove_and_status() {
        let mut b = CronBook::new("main");
        let j = every(&mut b, "a", 60_000);
        let st = b.status(true, "/state/openclaw.sqlite");
        assert_eq!(st["jobs"], 1);
        assert_eq!(st["nextWakeAtMs"], NOW + 60_000);
        assert_eq!(st["storage"], "sqlite");
        let removed = b.remove(&json!({"id": j.id})).unwrap();
        assert_eq!(events::removed(&removed)["action"], "removed");
        assert_eq!(b.status(true, "x")["nextWakeAtMs"], Value::Null);
        assert_eq!(b.status(false, "x")["enabled"], false);
    }

    #[test]
    fn due_run_cycle() {
        let mut b = CronBook::new("main");
        let j = every(&mut b, "a", 60_000);
        assert!(b.due(NOW + 59_999).is_empty());
        assert_eq!(b.due(NOW + 60_000), vec![j.id.clone()]);
        let RunStart::NotRun { reason, .. } = b.begin_run(&j.id, NOW + 1, "due").unwrap() else {
            panic!()
        };
        assert_eq!(reason, "not-due");
        let t = NOW + 60_000;
        let RunStart::Started {
            run_id,
            response,
            event,
            ..
        } = b.begin_run(&j.id, t, "due").unwrap()
        else {
            panic!()
        };
        assert_eq!(response["enqueued"], true);
        assert_eq!(event["action"], "started");
        assert_eq!(event["runAtMs"], t);
        // Running: not due again, no wake, a second run refused.
        assert!(b.due(t + 1).is_empty());
        assert_eq!(b.next_wake(), None);
        let RunStart::NotRun { response, .. } = b.begin_run(&j.id, t + 1, "force").unwrap() else {
            panic!()
        };
        assert_eq!(
            response,
            json!({"ok": true, "ran": false, "reason": "already-running"})
        );
        let fin = b
            .finish_run(&j.id, &run_id, t, &RunOutcome::error("boom"), t + 500)
            .unwrap();
        assert_eq!(fin.entry.status, Some(RunStatus::Error));
        assert_eq!(fin.entry.completion_status.as_deref(), Some("failed"));
        assert_eq!(fin.entry.duration_ms, Some(500));
        assert_eq!(fin.event["action"], "finished");
        assert_eq!(fin.event["status"], "error");
        assert_eq!(fin.event["job"]["state"]["consecutiveErrors"], 1);
        assert_eq!(b.next_wake(), Some(t + 60_000));
        let page = runs_page(
            std::slice::from_ref(&fin.entry),
            &RunsQuery::from_params(&json!({"id": j.id})),
            |_| Some("a"),
        );
        assert_eq!(page["entries"][0]["runId"], json!(run_id));
        assert_eq!(page["entries"][0]["jobName"], "a");
    }

    #[test]
    fn force_runs_disabled_one_shot_and_deletes_it() {
        let mut b = CronBook::new("main");
        let j = b
            .add(&json!({"name":"once","enabled":false,"schedule":{"kind":"at","at":"2026-03-05T00:00:00Z"},"payload":{"kind":"systemEvent","text":"t"}}), NOW)
            .unwrap();
        assert_eq!(j.state.next_run_at_ms, None);
        let RunStart::NotRun { reason, .. } = b.begin_run(&j.id, NOW, "if-enabled").unwrap() else {
            panic!()
        };
        assert_eq!(reason, "disabled");
        let RunStart::Started { run_id, .. } = b.begin_run(&j.id, NOW, "force").unwrap() else {
            panic!()
        };
        let fin = b
            .finish_run(&j.id, &run_id, NOW, &RunOutcome::ok(), NOW + 1)
            .unwrap();
        assert!(fin.deleted);
        assert!(fin.job.is_none());
        assert!(b.get(&j.id).is_none());
        assert_eq!(fin.entry.completion_status.as_deref(), Some("succeeded"));
    }

    #[test]
    fn add_response_and_events_shape() {
        let mut b = CronBook::new("main");
        let j = b
            .add(&json!({"name":"r","schedule":{"kind":"cron","expr":"0 3 * * *"},"sessionTarget":"isolated","payload":{"kind":"agentTurn","message":"m"},"delivery":{"mode":"none"}}), NOW)
            .unwrap();
        let v = CronBook::add_response(&j);
        assert_eq!(
            v["deliveryPreview"],
            json!({"label":"not requested","detail":"not requested"})
        );
        assert_eq!(v["schedule"], json!({"kind":"cron","expr":"0 3 * * *"}));
        assert_eq!(v["nextRunAtMs"], 1_772_420_400_000u64); // 2026-03-02T03:00:00Z
        let ev = events::added(&j);
        assert_eq!(ev["jobId"], json!(j.id));
        assert_eq!(ev["nextRunAtMs"], 1_772_420_400_000u64);
        let u = b.update(&json!({"jobId": j.id, "patch": {"name": "r2"}, "expectedConfigRevision": j.config_revision()}), NOW).unwrap();
        assert_eq!(events::updated(&u)["job"]["name"], "r2");
        let e = b.update(&json!({"jobId": j.id, "patch": {"name": "r3"}, "expectedConfigRevision": "sha256:stale"}), NOW).unwrap_err();
        assert!(e.message().contains("no longer matches"));
    }

    #[test]
    fn jobs_round_trip_through_json() {
        let mut b = CronBook::new("main");
        let j = every(&mut b, "a", 60_000);
        let blob = serde_json::to_string(&j).unwrap();
        let back: Job = serde_json::from_str(&blob).unwrap();
        assert_eq!(back, j);
        let captured = json!({"id":"e4c8","agentId":"main","name":"heartbeat-main","enabled":true,"createdAtMs":1,"updatedAtMs":2,
            "schedule":{"kind":"every","everyMs":1800000,"anchorMs":1193378},"sessionTarget":"main","wakeMode":"next-heartbeat",
            "payload":{"kind":"heartbeat"},"state":{"nextRunAtMs":3,"lastStatus":"skipped","lastDurationMs":385,"consecutiveErrors":0}});
        let j: Job = serde_json::from_value(captured).unwrap();
        assert_eq!(j.last_status(), Some(RunStatus::Skipped));
        let b = CronBook::from_jobs("main", vec![j]);
        assert_eq!(b.next_wake(), Some(3));
    }
}
