//! The cron job: its stored shape (the original's field names), `cron.add` normalisation and
//! validation, `cron.update` patches, next-run computation and run bookkeeping.

use super::schedule::{self, Schedule};
use super::CronError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Retry delays after consecutive errors of recurring jobs (`DEFAULT_ERROR_BACKOFF_SCHEDULE_MS`).
pub const ERROR_BACKOFF_MS: [u64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];

/// Recurring jobs are disabled after this many consecutive failed runs.
pub const MAX_CONSECUTIVE_RUN_FAILURES: u32 = 10;
/// A recurring job runs again no sooner than this after its previous run ended (the
/// original's `MIN_REFIRE_GAP_MS`), however short its interval: `every 1 ms` is accepted, as
/// on the original, but cannot keep the owner shard busy.
pub const MIN_REFIRE_GAP_MS: u64 = 2_000;

/// A run's outcome, `ok | error | skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Ok,
    Error,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// Scheduler-maintained state (`CronJobState`); absent fields are omitted on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<RunStatus>,
    /// Deprecated alias of `lastRunStatus`, still written by the original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<RunStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_notification_delivery_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_skipped: Option<u32>,
    /// `{reason, atMs, consecutiveErrors}` once the job was disabled after repeated failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_disabled: Option<Value>,
}

/// A stored job. `payload`, `delivery` and `failureAlert` are kept as JSON objects: ringgate
/// reads only `payload.kind/text/message` and `delivery.mode`, and must round-trip the rest
/// (model, thinking, toolsAllow, channel, to, ...) untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub declaration_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_key: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delete_after_run: Option<bool>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub schedule: Schedule,
    /// `main | isolated | current | session:<id>`.
    pub session_target: String,
    /// `now | next-heartbeat`.
    pub wake_mode: String,
    pub payload: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivery: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_alert: Option<Value>,
    #[serde(default)]
    pub state: JobState,
}

/// What the executor reports for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub session_id: Option<String>,
    pub session_key: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// `delivered | not-delivered | unknown | not-requested`; `None` = derived from the job.
    pub delivery_status: Option<String>,
}

impl RunOutcome {
    pub fn ok() -> Self {
        Self::with(RunStatus::Ok, None)
    }
    pub fn error(reason: impl Into<String>) -> Self {
        Self::with(RunStatus::Error, Some(reason.into()))
    }
    pub fn skipped(reason: impl Into<String>) -> Self {
        Self::with(RunStatus::Skipped, Some(reason.into()))
    }
    fn with(status: RunStatus, error: Option<String>) -> Self {
        RunOutcome {
            status,
            error,
            summary: None,
            session_id: None,
            session_key: None,
            model: None,
            provider: None,
            delivery_status: None,
        }
    }
}

const ADD: &str = "cron.add";
const UPDATE: &str = "cron.update";

impl Job {
    /// `resolveCronJobEffectiveAgentId`: the job's agent, else the gateway's default.
    pub fn effective_agent_id<'a>(&'a self, default_agent_id: &'a str) -> &'a str {
        self.agent_id.as_deref().unwrap_or(default_agent_id)
    }

    pub fn last_status(&self) -> Option<RunStatus> {
        self.state.last_run_status.or(self.state.last_status)
    }

    /// `cron.add`: applies the original's create-time defaults, validates, and builds the job
    /// with its first `nextRunAtMs`.
    pub fn create(params: &Value, id: String, now_ms: u64) -> Result<Job, CronError> {
        let p = params
            .as_object()
            .ok_or_else(|| CronError::invalid(ADD, "must be object"))?;
        for field in ["declarationKey", "displayName"] {
            if p.get(field)
                .and_then(Value::as_str)
                .is_some_and(|s| s.trim().is_empty())
            {
                return Err(CronError::invalid(
                    ADD,
                    format!("{field} must not be blank"),
                ));
            }
        }
        let enabled = match p.get("enabled") {
            None => true,
            Some(v) => {
                parse_bool(v).ok_or_else(|| CronError::invalid(ADD, "enabled must be a boolean"))?
            }
        };
        let payload = normalize_payload(p.get("payload"), ADD)?;
        let kind = payload
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut schedule = normalize_schedule(p.get("schedule"), ADD, Some(now_ms))?;
        if let Schedule::Cron {
            expr, stagger_ms, ..
        } = &mut schedule
        {
            if stagger_ms.is_none() {
                *stagger_ms = schedule::default_stagger_ms(expr);
            }
        }
        let session_key = opt_str(p, "sessionKey");
        let session_target = match opt_str(p, "sessionTarget") {
            Some(t) => normalize_session_target(&t, ADD)?,
            None if kind == "systemEvent" || kind == "heartbeat" => "main".to_owned(),
            None => "current".to_owned(),
        };
        // `current` binds to the caller's session when it has one, else runs isolated.
        let session_target = match (session_target.as_str(), &session_key) {
            ("current", None) => "isolated".to_owned(),
            _ => session_target,
        };
        let wake_mode = match opt_str(p, "wakeMode") {
            Some(w) => normalize_wake_mode(&w, ADD)?,
            None => "now".to_owned(),
        };
        let name = match opt_str(p, "name") {
            Some(n) => n,
            None => infer_name(&payload, &schedule),
        };
        if name.is_empty() {
            return Err(CronError::invalid(ADD, "automation name is required"));
        }
        let delivery = match p.get("delivery") {
            Some(Value::Object(d)) => Some(Value::Object(d.clone())),
            Some(Value::Null) | None if defaults_to_announce(&kind, &session_target) => {
                Some(json!({"mode": "announce"}))
            }
            _ => None,
        };
        let delete_after_run = match p.get("deleteAfterRun") {
            Some(Value::Bool(b)) => Some(*b),
            _ => matches!(schedule, Schedule::At { .. }).then_some(true),
        };
        let mut job = Job {
            id,
            declaration_key: opt_str(p, "declarationKey"),
            display_name: opt_str(p, "displayName"),
            agent_id: opt_str(p, "agentId").map(|a| a.to_ascii_lowercase()),
            session_key,
            name,
            description: opt_str(p, "description"),
            enabled,
            delete_after_run,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            schedule,
            session_target,
            wake_mode,
            payload,
            delivery,
            failure_alert: p.get("failureAlert").filter(|v| !v.is_null()).cloned(),
            state: JobState::default(),
        };
        job.validate(ADD, now_ms, true)?;
        job.state.next_run_at_ms = job.compute_next_run(now_ms);
        Ok(job)
    }

    /// `cron.update`: applies `patch` (omitted fields kept, nested payload merged), validates
    /// the result and recomputes the next run. On error the job is left unchanged.
    pub fn apply_patch(&mut self, patch: &Value, now_ms: u64) -> Result<(), CronError> {
        let p = patch
            .as_object()
            .ok_or_else(|| CronError::invalid(UPDATE, "must have required property 'patch'"))?;
        let mut next = self.clone();
        let previous_kind = next.schedule.kind();
        if let Some(v) = p.get("name") {
            next.name = v
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| CronError::invalid(UPDATE, "automation name is required"))?
                .to_owned();
        }
        if p.contains_key("description") {
            next.description = opt_str(p, "description");
        }
        if let Some(v) = p.get("displayName") {
            if v.as_str().is_some_and(|s| s.trim().is_empty()) {
                return Err(CronError::invalid(UPDATE, "displayName must not be blank"));
            }
            next.display_name = opt_str(p, "displayName");
        }
        if let Some(v) = p.get("enabled") {
            next.enabled = parse_bool(v)
                .ok_or_else(|| CronError::invalid(UPDATE, "at /patch/enabled: must be boolean"))?;
        }
        let schedule_touched = p.contains_key("schedule");
        if schedule_touched {
            next.schedule = normalize_schedule(p.get("schedule"), UPDATE, None)?;
            if let (
                Schedule::Every {
                    anchor_ms: a @ None,
                    every_ms,
                },
                Schedule::Every {
                    anchor_ms: prev,
                    every_ms: prev_every,
                },
            ) = (&mut next.schedule, &self.schedule)
            {
                // Same interval keeps its phase; a new one starts from now.
                *a = Some(if every_ms == prev_every {
                    prev.unwrap_or(self.created_at_ms)
                } else {
                    now_ms
                });
            }
        }
        match p.get("deleteAfterRun") {
            Some(Value::Bool(b)) => next.delete_after_run = Some(*b),
            _ if next.schedule.kind() == "at" && previous_kind != "at" => {
                next.delete_after_run = Some(true)
            }
            _ if previous_kind == "at" && next.schedule.kind() != "at" => {
                next.delete_after_run = None
            }
            _ => {}
        }
        if let Some(t) = p.get("sessionTarget").and_then(Value::as_str) {
            next.session_target = normalize_session_target(t, UPDATE)?;
        }
        if let Some(w) = p.get("wakeMode").and_then(Value::as_str) {
            next.wake_mode = normalize_wake_mode(w, UPDATE)?;
        }
        if let Some(pp) = p.get("payload") {
            next.payload = merge_payload(&self.payload, pp)?;
        }
        if let Some(Value::Object(d)) = p.get("delivery") {
            let mut merged = next
                .delivery
                .take()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            for (k, v) in d {
                if v.is_null() {
                    merged.remove(k);
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
            next.delivery = Some(Value::Object(merged));
        }
        if let Some(v) = p.get("failureAlert") {
            next.failure_alert = (!v.is_null()).then(|| v.clone());
        }
        if p.contains_key("agentId") {
            next.agent_id = opt_str(p, "agentId").map(|a| a.to_ascii_lowercase());
        }
        if p.contains_key("sessionKey") {
            next.session_key = opt_str(p, "sessionKey");
        }
        // Main-session jobs carry no delivery of their own.
        if next.session_target == "main" {
            next.delivery = None;
        }
        if p.get("enabled") == Some(&Value::Bool(true)) {
            next.state.auto_disabled = None;
            next.state.consecutive_errors = Some(0);
        }
        let touched = schedule_touched || p.get("enabled") == Some(&Value::Bool(true));
        next.validate(UPDATE, now_ms, touched)?;
        next.updated_at_ms = now_ms;
        if touched || p.contains_key("enabled") {
            next.state.next_run_at_ms = next.compute_next_run(now_ms);
        }
        *self = next;
        Ok(())
    }

    /// `assertSupportedJobSpec` + `assertTimeScheduleSatisfiable`.
    fn validate(
        &self,
        method: &'static str,
        now_ms: u64,
        schedule_touched: bool,
    ) -> Result<(), CronError> {
        let kind = self
            .payload
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let isolated_like = self.session_target == "isolated"
            || self.session_target == "current"
            || self.session_target.starts_with("session:");
        if self.session_target == "main" && kind != "systemEvent" && kind != "heartbeat" {
            return Err(CronError::invalid(
                method,
                "main cron jobs require payload.kind=\"systemEvent\" or \"script\"",
            ));
        }
        if isolated_like && kind != "agentTurn" {
            return Err(CronError::invalid(method, "isolated cron jobs require payload.kind=\"agentTurn\", \"command\", or \"script\"; script payloads do not support current/session targets"));
        }
        if !schedule_touched {
            return Ok(());
        }
        match &self.schedule {
            Schedule::At { at } => {
                if schedule::parse_absolute_time_ms(at).is_none() {
                    return Err(CronError::invalid(
                        method,
                        "cron at schedule must contain a Date-valid absolute timestamp",
                    ));
                }
            }
            Schedule::Every { .. } => {
                let probe = Job {
                    enabled: true,
                    ..self.clone()
                };
                if probe.compute_next_run(now_ms).is_none() {
                    return Err(CronError::invalid(
                        method,
                        "cron every schedule has no upcoming run time and would never fire",
                    ));
                }
            }
            Schedule::Cron { expr, tz, .. } => {
                schedule::check_tz(tz.as_deref()).map_err(|e| CronError::invalid(method, e))?;
                let parsed =
                    schedule::CronExpr::parse(expr).map_err(|e| CronError::invalid(method, e))?;
                if parsed.next_after(now_ms).is_none() {
                    return Err(CronError::invalid(
                        method,
                        format!("cron expression \"{expr}\" has no upcoming run time and would never fire"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `computeJobNextRunAtMs`: `None` for disabled jobs. `every` continues from the last run
    /// when that is still ahead; `at` fires once (again only if re-pointed later than the
    /// last successful run); `cron` is staggered per job.
    pub fn compute_next_run(&self, now_ms: u64) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        match &self.schedule {
            Schedule::Every {
                every_ms,
                anchor_ms,
            } => {
                let anchor = anchor_ms.unwrap_or(self.created_at_ms);
                if let Some(last) = self.state.last_run_at_ms.filter(|&l| l >= anchor) {
                    let from_last = last.checked_add(*every_ms)?;
                    if from_last > now_ms {
                        return Some(from_last);
                    }
                }
                schedule::next_every(*every_ms, anchor, now_ms)
            }
            Schedule::At { at } => {
                let at_ms = schedule::parse_absolute_time_ms(at)?;
                match (self.last_status(), self.state.last_run_at_ms) {
                    (Some(RunStatus::Ok), Some(last)) => (at_ms > last).then_some(at_ms),
                    _ => Some(at_ms),
                }
            }
            Schedule::Cron { .. } => schedule::next_staggered(&self.schedule, &self.id, now_ms)
                .ok()
                .flatten(),
        }
    }

    /// `isJobDue` (scheduled mode): enabled, not running, and its slot has come.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.enabled
            && self.state.running_at_ms.is_none()
            && self
                .state
                .next_run_at_ms
                .is_some_and(|t| t > 0 && now_ms >= t)
    }

    /// `applyJobResult`: records the run and decides what comes next. Returns `true` when the
    /// job should be deleted (a succeeded one-shot with `deleteAfterRun`).
    pub fn record_run(
        &mut self,
        outcome: &RunOutcome,
        started_at_ms: u64,
        ended_at_ms: u64,
    ) -> bool {
        let st = &mut self.state;
        st.running_at_ms = None;
        st.last_run_at_ms = Some(started_at_ms);
        st.last_run_status = Some(outcome.status);
        st.last_status = Some(outcome.status);
        st.last_duration_ms = Some(ended_at_ms.saturating_sub(started_at_ms));
        st.last_error = outcome.error.clone();
        st.last_delivery_status = Some(
            outcome
                .delivery_status
                .clone()
                .unwrap_or_else(|| "not-requested".to_owned()),
        );
        st.last_delivered = match st.last_delivery_status.as_deref() {
            Some("delivered") => Some(true),
            Some("not-delivered") => Some(false),
            _ => None,
        };
        st.last_failure_notification_delivery_status = Some("not-requested".to_owned());
        match outcome.status {
            RunStatus::Error => {
                st.consecutive_errors = Some(st.consecutive_errors.unwrap_or(0) + 1);
                st.consecutive_skipped = Some(0);
            }
            RunStatus::Skipped => {
                st.consecutive_errors = Some(0);
                st.consecutive_skipped = Some(st.consecutive_skipped.unwrap_or(0) + 1);
            }
            RunStatus::Ok => {
                st.consecutive_errors = Some(0);
                st.consecutive_skipped = Some(0);
            }
        }
        self.updated_at_ms = ended_at_ms;
        if let Schedule::At { .. } = self.schedule {
            let succeeded = outcome.status == RunStatus::Ok;
            if succeeded && self.delete_after_run == Some(true) {
                return true;
            }
            // One-shots disable after running (errors are not retried here).
            self.enabled = false;
            self.state.next_run_at_ms = None;
            return false;
        }
        if outcome.status == RunStatus::Error && self.enabled {
            let errors = self.state.consecutive_errors.unwrap_or(1);
            if errors >= MAX_CONSECUTIVE_RUN_FAILURES {
                self.enabled = false;
                self.state.next_run_at_ms = None;
                self.state.auto_disabled = Some(json!({
                    "reason": "consecutive-failures",
                    "atMs": ended_at_ms,
                    "consecutiveErrors": errors,
                }));
                return false;
            }
            let backoff =
                ERROR_BACKOFF_MS[(errors.max(1) as usize - 1).min(ERROR_BACKOFF_MS.len() - 1)];
            let natural = self.compute_next_run(ended_at_ms);
            self.state.next_run_at_ms = natural.map(|n| n.max(ended_at_ms + backoff));
            return false;
        }
        self.state.next_run_at_ms = self
            .compute_next_run(ended_at_ms)
            .map(|n| n.max(ended_at_ms.saturating_add(MIN_REFIRE_GAP_MS)));
        false
    }

    /// `cronJobReadView`: the public job plus the top-level mirrors of its state that the
    /// CLI and Control UI read, and an opaque `configRevision`.
    pub fn read_view(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let Some(o) = v.as_object_mut() else { return v };
        o.insert(
            "configRevision".into(),
            Value::String(self.config_revision()),
        );
        let st = &self.state;
        let mut put = |k: &str, val: Option<Value>| {
            if let Some(val) = val {
                o.insert(k.into(), val);
            }
        };
        put("nextRunAtMs", st.next_run_at_ms.map(Value::from));
        put("lastRunAtMs", st.last_run_at_ms.map(Value::from));
        put(
            "lastRunStatus",
            self.last_status().map(|s| Value::from(s.as_str())),
        );
        put("lastRunError", st.last_error.clone().map(Value::from));
        put("lastDelivered", st.last_delivered.map(Value::from));
        put(
            "lastDeliveryStatus",
            st.last_delivery_status.clone().map(Value::from),
        );
        put(
            "lastDeliveryError",
            st.last_delivery_error.clone().map(Value::from),
        );
        put(
            "lastFailureNotificationDeliveryStatus",
            st.last_failure_notification_delivery_status
                .clone()
                .map(Value::from),
        );
        v
    }

    /// `sha256:<base64url>` of the definition without `updatedAtMs` and `state`: changes
    /// exactly when the job's configuration does.
    pub fn config_revision(&self) -> String {
        use base64::Engine;
        use sha2::{Digest, Sha256};
        let mut def = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = def.as_object_mut() {
            o.remove("updatedAtMs");
            o.remove("state");
        }
        let digest = Sha256::digest(def.to_string().as_bytes());
        format!(
            "sha256:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        )
    }

    /// The `deliveryPreview` shown at add/list time: `not requested` unless announcing.
    pub fn delivery_preview(&self) -> Value {
        let delivery = self.delivery.as_ref().and_then(Value::as_object);
        match delivery.and_then(|d| d.get("mode")).and_then(Value::as_str) {
            Some("announce") => {
                let d = delivery.unwrap_or_else(|| unreachable!());
                let channel = d.get("channel").and_then(Value::as_str).unwrap_or("last");
                let to = d.get("to").and_then(Value::as_str);
                let detail = match to {
                    Some(to) => format!("announce to {channel}:{to}"),
                    None => format!("announce to {channel}"),
                };
                json!({"label": channel, "detail": detail})
            }
            Some("webhook") => {
                let to = delivery
                    .and_then(|d| d.get("to"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                json!({"label": "webhook", "detail": format!("webhook {to}")})
            }
            _ => json!({"label": "not requested", "detail": "not requested"}),
        }
    }
}

fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn opt_str(p: &Map<String, Value>, key: &str) -> Option<String> {
    p.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn normalize_session_target(raw: &str, method: &'static str) -> Result<String, CronError> {
    let t = raw.trim();
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "main" | "isolated" | "current" => Ok(lower),
        _ if lower.starts_with("session:") && !t[8..].trim().is_empty() => Ok(format!("session:{}", t[8..].trim())),
        _ => Err(CronError::invalid(method, "cron job is missing sessionTarget; expected \"main\", \"isolated\", \"current\", or \"session:<id>\"")),
    }
}

fn normalize_wake_mode(raw: &str, method: &'static str) -> Result<String, CronError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        w @ ("now" | "next-heartbeat") => Ok(w.to_owned()),
        _ => Err(CronError::invalid(
            method,
            "at /wakeMode: must be equal to constant; at /wakeMode: must match a schema in anyOf",
        )),
    }
}

/// `shouldDefaultCronDeliveryToAnnounce`: isolated-like agent turns announce their result.
fn defaults_to_announce(kind: &str, target: &str) -> bool {
    kind == "agentTurn"
        && (target == "isolated" || target == "current" || target.starts_with("session:"))
}

/// `coerceSchedule` + the schema: lower-cased kind, numbers coerced, `at` stored as ISO.
fn normalize_schedule(
    raw: Option<&Value>,
    method: &'static str,
    create_now: Option<u64>,
) -> Result<Schedule, CronError> {
    let s = raw
        .and_then(Value::as_object)
        .ok_or_else(|| CronError::invalid(method, "must have required property 'schedule'"))?;
    let kind = s
        .get("kind")
        .and_then(Value::as_str)
        .map(|k| k.trim().to_ascii_lowercase());
    let num = |k: &str| match s.get(k) {
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.floor() as u64),
        Some(Value::String(t)) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.floor() as u64),
        _ => None,
    };
    // The schema's `maximum: MAX_DATE_TIMESTAMP_MS` on every schedule number.
    for k in ["everyMs", "anchorMs", "staggerMs"] {
        if num(k).is_some_and(|n| n > schedule::MAX_DATE_TIMESTAMP_MS) {
            return Err(CronError::invalid(
                method,
                format!(
                    "at /schedule/{k}: must be <= {}",
                    schedule::MAX_DATE_TIMESTAMP_MS
                ),
            ));
        }
    }
    match kind.as_deref() {
        Some("at") => {
            let raw_at = match s.get("at") {
                Some(Value::String(t)) => t.trim().to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            if raw_at.is_empty() {
                return Err(CronError::invalid(method, "at /schedule: must have required property 'at'"));
            }
            let at = schedule::parse_absolute_time_ms(&raw_at).map(schedule::ms_to_iso).unwrap_or(raw_at);
            Ok(Schedule::At { at })
        }
        Some("every") => {
            let every_ms = num("everyMs")
                .filter(|&n| n >= 1)
                .ok_or_else(|| CronError::invalid(method, "at /schedule: must have required property 'everyMs'"))?;
            let anchor_ms = num("anchorMs").or(create_now);
            Ok(Schedule::Every { every_ms, anchor_ms })
        }
        Some("cron") => {
            let expr = s
                .get("expr")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| CronError::invalid(method, "at /schedule: must have required property 'expr'"))?
                .to_owned();
            let tz = s.get("tz").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
            let stagger_ms = match s.get("staggerMs") {
                None | Some(Value::Null) => None,
                Some(_) => Some(num("staggerMs").ok_or_else(|| {
                    CronError::invalid(method, "schedule.staggerMs must be a valid number or non-negative integer string")
                })?),
            };
            Ok(Schedule::Cron { expr, tz, stagger_ms })
        }
        Some(other @ ("on-exit" | "stream")) => Err(CronError::invalid(method, format!("{other} schedules are not supported by this gateway"))),
        _ => Err(CronError::invalid(method, "at /schedule/kind: must be equal to constant; at /schedule: must match a schema in anyOf")),
    }
}

/// The payload kinds ringgate executes: `systemEvent {text}` (main session), `agentTurn
/// {message, ...}` (isolated/session) and the system-owned `heartbeat`.
fn normalize_payload(
    raw: Option<&Value>,
    method: &'static str,
) -> Result<Map<String, Value>, CronError> {
    let mut p = raw
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| CronError::invalid(method, "must have required property 'payload'"))?;
    let kind = p
        .get("kind")
        .and_then(Value::as_str)
        .map(|k| k.trim().to_owned())
        .unwrap_or_default();
    let required = match kind.as_str() {
        "systemEvent" => Some("text"),
        "agentTurn" => Some("message"),
        "heartbeat" => None,
        "command" | "script" => {
            return Err(CronError::invalid(method, format!("{kind} payloads are not supported by this gateway")))
        }
        _ => return Err(CronError::invalid(method, "at /payload/kind: must be equal to constant; at /payload: must match a schema in anyOf")),
    };
    p.insert("kind".into(), Value::String(kind));
    if let Some(field) = required {
        let ok = p
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty());
        if !ok {
            return Err(CronError::invalid(
                method,
                format!("at /payload: must have required property '{field}'"),
            ));
        }
    }
    Ok(p)
}

/// `mergeCronPayload`: same kind merges field by field (null clears); a new kind replaces.
fn merge_payload(
    existing: &Map<String, Value>,
    patch: &Value,
) -> Result<Map<String, Value>, CronError> {
    let pp = patch
        .as_object()
        .ok_or_else(|| CronError::invalid(UPDATE, "at /patch/payload: must be object"))?;
    let old_kind = existing.get("kind").and_then(Value::as_str).unwrap_or("");
    let new_kind = pp.get("kind").and_then(Value::as_str).unwrap_or(old_kind);
    if new_kind != old_kind {
        let merged = normalize_payload(Some(patch), UPDATE).map_err(|_| match new_kind {
            "systemEvent" => CronError::invalid(
                UPDATE,
                "cron.update payload.kind=\"systemEvent\" requires text",
            ),
            "agentTurn" => CronError::invalid(
                UPDATE,
                "cron.update payload.kind=\"agentTurn\" requires message",
            ),
            _ => CronError::invalid(UPDATE, "at /patch/payload/kind: must be equal to constant"),
        })?;
        return Ok(merged);
    }
    let mut next = existing.clone();
    for (k, v) in pp {
        if v.is_null() {
            next.remove(k);
        } else {
            next.insert(k.clone(), v.clone());
        }
    }
    Ok(next)
}

/// `inferCronJobName`: first line of the text/message, else a schedule description.
pub fn infer_name(payload: &Map<String, Value>, schedule: &Schedule) -> String {
    let text = payload
        .get("text")
        .or_else(|| payload.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
        return truncate(line, 60);
    }
    match schedule {
        Schedule::Cron { expr, .. } => format!("Cron: {}", truncate(expr, 52)),
        Schedule::Every { every_ms, .. } => format!("Every: {every_ms}ms"),
        Schedule::At { at } => format!("At: {at}"),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max - 1).collect();
    format!("{}…", head.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_772_368_200_000; // 2026-03-01T12:30:00Z

    fn add(v: Value) -> Result<Job, CronError> {
        Job::create(&v, "job-1".into(), NOW)
    }

    fn reason(e: CronError) -> String {
        e.message()
    }

    #[test]
    fn add_main_system_event_with_defaults() {
        let j = add(json!({"name":" hi ","schedule":{"kind":"every","everyMs":60000},"payload":{"kind":"systemEvent","text":"ping"}})).unwrap();
        assert_eq!(j.name, "hi");
        assert_eq!(j.session_target, "main");
        assert_eq!(j.wake_mode, "now");
        assert!(j.enabled);
        assert_eq!(
            j.schedule,
            Schedule::Every {
                every_ms: 60_000,
                anchor_ms: Some(NOW)
            }
        );
        assert_eq!(j.state.next_run_at_ms, Some(NOW + 60_000));
        assert_eq!(j.delivery, None);
    }

    #[test]
    fn add_agent_turn_isolated_defaults_announce_and_at_deletes() {
        let j = add(json!({"name":"r","schedule":{"kind":"at","at":"2026-03-02T09:00:00Z"},"payload":{"kind":"agentTurn","message":"go"}})).unwrap();
        assert_eq!(j.session_target, "isolated");
        assert_eq!(j.delivery, Some(json!({"mode":"announce"})));
        assert_eq!(j.delete_after_run, Some(true));
        assert_eq!(
            j.schedule,
            Schedule::At {
                at: "2026-03-02T09:00:00.000Z".into()
            }
        );
        assert_eq!(
            j.state.next_run_at_ms,
            schedule::parse_absolute_time_ms("2026-03-02T09:00:00Z")
        );
    }

    #[test]
    fn add_validation_messages() {
        let e = add(json!({"name":"x","schedule":{"kind":"cron","expr":"0 0 * *"},"sessionTarget":"main","payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert!(reason(e)
            .starts_with("invalid cron.add params: CronPattern: invalid configuration format"));
        let e = add(json!({"name":"x","schedule":{"kind":"every","everyMs":1000},"sessionTarget":"main","payload":{"kind":"agentTurn","message":"m"}})).unwrap_err();
        assert_eq!(reason(e), "invalid cron.add params: main cron jobs require payload.kind=\"systemEvent\" or \"script\"");
        let e = add(json!({"name":"x","schedule":{"kind":"every","everyMs":1000}})).unwrap_err();
        assert_eq!(
            reason(e),
            "invalid cron.add params: must have required property 'payload'"
        );
        let e = add(json!({"name":"x","payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert_eq!(
            reason(e),
            "invalid cron.add params: must have required property 'schedule'"
        );
        let e = add(json!({"name":"x","schedule":{"kind":"every","everyMs":1000},"payload":{"kind":"systemEvent"}})).unwrap_err();
        assert_eq!(
            reason(e),
            "invalid cron.add params: at /payload: must have required property 'text'"
        );
        let e = add(json!({"name":"x","schedule":{"kind":"at","at":"2020-01-01T00:00:00Z"},"payload":{"kind":"systemEvent","text":"t"}})).unwrap();
        assert_eq!(e.state.next_run_at_ms, Some(1_577_836_800_000)); // past one-shot stays due
        let e = add(json!({"name":"x","schedule":{"kind":"at","at":"someday"},"payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert_eq!(reason(e), "invalid cron.add params: cron at schedule must contain a Date-valid absolute timestamp");
        let e = add(json!({"name":"x","schedule":{"kind":"cron","expr":"0 0 30 2 *"},"payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert_eq!(reason(e), "invalid cron.add params: cron expression \"0 0 30 2 *\" has no upcoming run time and would never fire");
        let e = add(json!({"name":"x","enabled":"maybe","schedule":{"kind":"every","everyMs":1},"payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert_eq!(
            reason(e),
            "invalid cron.add params: enabled must be a boolean"
        );
        let e = add(json!({"name":"x","schedule":{"kind":"cron","expr":"0 3 * * *","tz":"America/New_York"},"payload":{"kind":"systemEvent","text":"t"}})).unwrap_err();
        assert!(reason(e).contains("America/New_York"));
    }

    #[test]
    fn add_infers_name_and_stagger() {
        let j = add(json!({"schedule":{"kind":"cron","expr":"0 * * * *"},"payload":{"kind":"systemEvent","text":"\n  check mail\nmore"}})).unwrap();
        assert_eq!(j.name, "check mail");
        assert_eq!(
            j.schedule,
            Schedule::Cron {
                expr: "0 * * * *".into(),
                tz: None,
                stagger_ms: Some(300_000)
            }
        );
    }

    #[test]
    fn patch_merges_and_recomputes() {
        let mut j = add(json!({"name":"r","schedule":{"kind":"every","everyMs":60000},"sessionTarget":"isolated","payload":{"kind":"agentTurn","message":"go","model":"m1"}})).unwrap();
        j.apply_patch(
            &json!({"payload":{"message":"again"},"schedule":{"kind":"cron","expr":"0 3 * * *"}}),
            NOW + 5,
        )
        .unwrap();
        assert_eq!(j.payload.get("model"), Some(&json!("m1")));
        assert_eq!(j.payload.get("message"), Some(&json!("again")));
        assert_eq!(
            j.state.next_run_at_ms,
            schedule::parse_absolute_time_ms("2026-03-02T03:00:00Z")
        );
        assert_eq!(j.updated_at_ms, NOW + 5);
        // Disabling clears the next run; an invalid patch leaves the job untouched.
        j.apply_patch(&json!({"enabled": false}), NOW + 6).unwrap();
        assert_eq!(j.state.next_run_at_ms, None);
        let before = j.clone();
        let e = j
            .apply_patch(&json!({"sessionTarget":"main"}), NOW + 7)
            .unwrap_err();
        assert!(e.message().contains("main cron jobs require"));
        assert_eq!(j, before);
        let e = j
            .apply_patch(&json!({"payload":{"kind":"systemEvent"}}), NOW)
            .unwrap_err();
        assert_eq!(
            e.message(),
            "invalid cron.update params: cron.update payload.kind=\"systemEvent\" requires text"
        );
    }

    #[test]
    fn run_recording_recurring() {
        let mut j = add(json!({"name":"r","schedule":{"kind":"every","everyMs":60000},"payload":{"kind":"systemEvent","text":"t"}})).unwrap();
        let t = NOW + 60_000;
        assert!(!j.record_run(&RunOutcome::ok(), t, t + 385));
        assert_eq!(j.state.last_run_at_ms, Some(t));
        assert_eq!(j.state.last_duration_ms, Some(385));
        assert_eq!(j.state.last_run_status, Some(RunStatus::Ok));
        assert_eq!(j.state.next_run_at_ms, Some(t + 60_000));
        assert!(!j.record_run(&RunOutcome::error("boom"), t + 60_000, t + 61_000));
        assert_eq!(j.state.consecutive_errors, Some(1));
        assert_eq!(j.state.last_error.as_deref(), Some("boom"));
        // Natural next (t+120000) is after the 30 s backoff, so it stands.
        assert_eq!(j.state.next_run_at_ms, Some(t + 120_000));
        assert!(!j.record_run(&RunOutcome::skipped("no-route"), t + 120_000, t + 120_001));
        assert_eq!(j.state.consecutive_errors, Some(0));
        assert_eq!(j.state.consecutive_skipped, Some(1));
        assert_eq!(j.last_status(), Some(RunStatus::Skipped));
    }

    #[test]
    fn a_one_millisecond_interval_refires_no_sooner_than_the_minimum_gap() {
        let mut j = add(
            json!({"name": "busy", "schedule": {"kind": "every", "everyMs": 1},
                               "payload": {"kind": "systemEvent", "text": "t"}}),
        )
        .unwrap();
        j.record_run(&RunOutcome::ok(), 10_000, 10_005);
        assert!(
            j.state.next_run_at_ms.unwrap() >= 10_005 + MIN_REFIRE_GAP_MS,
            "{:?}",
            j.state.next_run_at_ms
        );
        // Schedule numbers past the JavaScript Date range are refused, naming the field.
        let e = add(
            json!({"name": "far", "schedule": {"kind": "every", "everyMs": 1e19},
                           "payload": {"kind": "systemEvent", "text": "t"}}),
        )
        .unwrap_err();
        assert!(reason(e).contains("at /schedule/everyMs: must be <="));
    }

    #[test]
    fn errors_back_off_and_auto_disable() {
        let mut j = add(json!({"name":"r","schedule":{"kind":"every","everyMs":1000},"payload":{"kind":"systemEvent","text":"t"}})).unwrap();
        j.record_run(&RunOutcome::error("e"), NOW, NOW + 10);
        assert_eq!(j.state.next_run_at_ms, Some(NOW + 10 + 30_000));
        for i in 1..MAX_CONSECUTIVE_RUN_FAILURES {
            j.record_run(
                &RunOutcome::error("e"),
                NOW + u64::from(i),
                NOW + u64::from(i),
            );
        }
        assert!(!j.enabled);
        assert_eq!(j.state.next_run_at_ms, None);
        assert_eq!(
            j.state.auto_disabled.as_ref().unwrap()["reason"],
            "consecutive-failures"
        );
    }

    #[test]
    fn one_shot_deleted_or_disabled() {
        let mk = |extra: Value| {
            let mut v = json!({"name":"o","schedule":{"kind":"at","at":"2026-03-02T00:00:00Z"},"payload":{"kind":"systemEvent","text":"t"}});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            add(v).unwrap()
        };
        assert!(mk(json!({})).record_run(&RunOutcome::ok(), NOW, NOW + 1));
        let mut kept = mk(json!({"deleteAfterRun": false}));
        assert!(!kept.record_run(&RunOutcome::ok(), NOW, NOW + 1));
        assert!(!kept.enabled);
        assert_eq!(kept.state.next_run_at_ms, None);
        let mut failed = mk(json!({}));
        assert!(!failed.record_run(&RunOutcome::error("x"), NOW, NOW + 1));
        assert!(!failed.enabled);
    }

    #[test]
    fn read_view_mirrors_state() {
        let mut j = add(json!({"name":"r","schedule":{"kind":"every","everyMs":60000},"payload":{"kind":"systemEvent","text":"t"}})).unwrap();
        j.record_run(
            &RunOutcome::skipped("heartbeat skipped: no-route"),
            NOW,
            NOW + 385,
        );
        let v = j.read_view();
        assert_eq!(v["state"]["lastStatus"], "skipped");
        assert_eq!(v["lastRunStatus"], "skipped");
        assert_eq!(v["lastRunError"], "heartbeat skipped: no-route");
        assert_eq!(v["lastDeliveryStatus"], "not-requested");
        assert_eq!(v["nextRunAtMs"], v["state"]["nextRunAtMs"]);
        assert!(v["configRevision"].as_str().unwrap().starts_with("sha256:"));
        // State changes do not change the revision; definition changes do.
        let rev = j.config_revision();
        j.state.last_error = None;
        assert_eq!(rev, j.config_revision());
        j.name = "other".into();
        assert_ne!(rev, j.config_revision());
    }
}
