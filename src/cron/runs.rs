//! Run-log entries and the `cron.runs` page (`readCronTaskRunHistoryPage`).

use super::job::RunStatus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// One finished run, as `cron.runs` returns it (`CronRunLogEntry`, `action` always
/// `"finished"`). Stored by the gateway in its runs table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLogEntry {
    pub ts: u64,
    pub job_id: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<RunStatus>,
    /// `succeeded | failed | unknown`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub completion_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub delivery_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_run_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider: Option<String>,
    /// Attached at read time from the job table, never stored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub job_name: Option<String>,
}

/// `resolveCronCompletionStatus`: ok → succeeded unless required delivery failed; error →
/// failed; skipped → unknown.
pub fn completion_status(status: RunStatus, delivery_status: Option<&str>) -> &'static str {
    match (status, delivery_status) {
        (RunStatus::Error, _) => "failed",
        (RunStatus::Ok, Some("not-delivered")) => "failed",
        (RunStatus::Ok, Some("unknown")) => "unknown",
        (RunStatus::Ok, _) => "succeeded",
        (RunStatus::Skipped, _) => "unknown",
    }
}

/// The `cron.runs` filters, read from its params.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunsQuery {
    /// `id ?? jobId`; `None` with `scope: "all"` (or no selector) means every job.
    pub job_id: Option<String>,
    pub run_id: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub statuses: Option<Vec<String>>,
    pub delivery_statuses: Option<Vec<String>>,
    pub query: String,
    pub ascending: bool,
}

impl RunsQuery {
    /// Reads `{id|jobId, scope, runId, limit (1..200, default 50), offset, statuses|status,
    /// deliveryStatuses|deliveryStatus, query, sortDir (default desc)}`.
    pub fn from_params(params: &Value) -> RunsQuery {
        let p = params.as_object().cloned().unwrap_or_default();
        let s = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let n = |k: &str| {
            p.get(k)
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite())
                .map(|f| f.floor())
        };
        let all_scope = s("scope").as_deref() == Some("all");
        RunsQuery {
            job_id: if all_scope {
                None
            } else {
                s("id").or_else(|| s("jobId"))
            },
            run_id: s("runId"),
            limit: n("limit").unwrap_or(50.0).clamp(1.0, 200.0) as usize,
            offset: n("offset").unwrap_or(0.0).max(0.0) as usize,
            statuses: status_filter(&p, "statuses", "status", &["ok", "error", "skipped"]),
            delivery_statuses: status_filter(
                &p,
                "deliveryStatuses",
                "deliveryStatus",
                &["delivered", "not-delivered", "unknown", "not-requested"],
            ),
            query: s("query").unwrap_or_default().to_lowercase(),
            ascending: s("sortDir").as_deref() == Some("asc"),
        }
    }
}

/// `normalizeStatusFilter`: the valid values of the array, else the single value, else none
/// (`"all"` is not a status, so it filters nothing).
fn status_filter(
    p: &Map<String, Value>,
    many: &str,
    one: &str,
    valid: &[&str],
) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for v in p.get(many).and_then(Value::as_array).into_iter().flatten() {
        if let Some(s) = v.as_str().filter(|s| valid.contains(s)) {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        }
    }
    if !out.is_empty() {
        return Some(out);
    }
    p.get(one)
        .and_then(Value::as_str)
        .filter(|s| valid.contains(s))
        .map(|s| vec![s.to_owned()])
}

fn query_text(e: &RunLogEntry, job_name: Option<&str>) -> String {
    [
        e.summary.as_deref().unwrap_or(""),
        e.error.as_deref().unwrap_or(""),
        &e.job_id,
        job_name.unwrap_or(""),
    ]
    .join(" ")
    .to_lowercase()
}

/// Builds `{entries, total, offset, limit, hasMore, nextOffset}` from the stored entries
/// (any order); `job_name` resolves `jobName` for the entries returned.
pub fn runs_page<'a>(
    entries: &'a [RunLogEntry],
    q: &RunsQuery,
    job_name: impl Fn(&str) -> Option<&'a str>,
) -> Value {
    let mut rows: Vec<&RunLogEntry> = entries
        .iter()
        .filter(|e| q.job_id.as_deref().is_none_or(|id| e.job_id == id))
        .filter(|e| {
            q.run_id
                .as_deref()
                .is_none_or(|r| e.run_id.as_deref() == Some(r))
        })
        .filter(|e| {
            q.statuses
                .as_ref()
                .is_none_or(|ss| e.status.is_some_and(|s| ss.iter().any(|x| x == s.as_str())))
        })
        .filter(|e| {
            q.delivery_statuses.as_ref().is_none_or(|ds| {
                let d = e.delivery_status.as_deref().unwrap_or("not-requested");
                ds.iter().any(|x| x == d)
            })
        })
        .filter(|e| q.query.is_empty() || query_text(e, job_name(&e.job_id)).contains(&q.query))
        .collect();
    rows.sort_by_key(|e| e.ts);
    if !q.ascending {
        rows.reverse();
    }
    let total = rows.len();
    let offset = q.offset.min(total);
    let page: Vec<Value> = rows
        .iter()
        .skip(offset)
        .take(q.limit)
        .map(|e| {
            let mut e = (*e).clone();
            if let Some(name) = job_name(&e.job_id) {
                e.job_name = Some(name.to_owned());
            }
            serde_json::to_value(e).unwrap_or(Value::Null)
        })
        .collect();
    let next = offset + page.len();
    json!({
        "entries": page,
        "total": total,
        "offset": offset,
        "limit": q.limit,
        "hasMore": next < total,
        "nextOffset": if next < total { json!(next) } else { Value::Null },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: &str, ts: u64, status: RunStatus) -> RunLogEntry {
        RunLogEntry {
            ts,
            job_id: job.into(),
            action: "finished".into(),
            status: Some(status),
            completion_status: Some(completion_status(status, None).into()),
            error: (status == RunStatus::Error).then(|| "boom".into()),
            summary: Some(format!("run {ts}")),
            delivered: None,
            delivery_status: Some("not-requested".into()),
            session_id: None,
            session_key: None,
            run_id: Some(format!("manual:{job}:{ts}:1")),
            run_at_ms: Some(ts - 10),
            duration_ms: Some(10),
            next_run_at_ms: None,
            model: None,
            provider: None,
            job_name: None,
        }
    }

    #[test]
    fn page_newest_first_with_paging_and_names() {
        let es: Vec<_> = (1..=5)
            .map(|i| entry("a", i * 100, RunStatus::Ok))
            .chain([entry("b", 250, RunStatus::Error)])
            .collect();
        let q = RunsQuery::from_params(&json!({"id": "a", "limit": 2, "offset": 1}));
        let v = runs_page(&es, &q, |id| (id == "a").then_some("Job A"));
        assert_eq!(v["total"], 5);
        assert_eq!(v["entries"][0]["ts"], 400);
        assert_eq!(v["entries"][1]["ts"], 300);
        assert_eq!(v["entries"][0]["jobName"], "Job A");
        assert_eq!(v["entries"][0]["action"], "finished");
        assert_eq!(v["hasMore"], true);
        assert_eq!(v["nextOffset"], 3);
        assert_eq!(v["limit"], 2);
    }

    #[test]
    fn filters_status_run_id_query_and_scope_all() {
        let es = vec![
            entry("a", 100, RunStatus::Ok),
            entry("b", 200, RunStatus::Error),
            entry("a", 300, RunStatus::Skipped),
        ];
        let v = runs_page(
            &es,
            &RunsQuery::from_params(&json!({"scope":"all","status":"error"})),
            |_| None,
        );
        assert_eq!(v["total"], 1);
        assert_eq!(v["entries"][0]["error"], "boom");
        let v = runs_page(
            &es,
            &RunsQuery::from_params(&json!({"id":"a","runId":"manual:a:300:1","limit":1})),
            |_| None,
        );
        assert_eq!(v["entries"][0]["status"], "skipped");
        assert_eq!(v["nextOffset"], Value::Null);
        let v = runs_page(
            &es,
            &RunsQuery::from_params(&json!({"query":"RUN 1","status":"all"})),
            |_| None,
        );
        assert_eq!(v["total"], 1);
        let v = runs_page(
            &es,
            &RunsQuery::from_params(&json!({"sortDir":"asc","statuses":["ok","skipped"]})),
            |_| None,
        );
        assert_eq!(v["entries"][0]["ts"], 100);
        assert_eq!(v["total"], 2);
    }

    #[test]
    fn completion_statuses() {
        assert_eq!(
            completion_status(RunStatus::Ok, Some("delivered")),
            "succeeded"
        );
        assert_eq!(
            completion_status(RunStatus::Ok, Some("not-delivered")),
            "failed"
        );
        assert_eq!(completion_status(RunStatus::Error, None), "failed");
        assert_eq!(completion_status(RunStatus::Skipped, None), "unknown");
    }
}
