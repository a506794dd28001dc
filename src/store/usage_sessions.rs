//! `sessions.usage`: the Usage page's per-session and aggregate figures, in the original's
//! shape, from ringgate's records — run records (tokens, model, start and end) and the
//! transcript (message counts by role and day). Costs come from `ringgate.pricing`; tokens of
//! unpriced models count in `missingCostEntries`, never guessed.
//!
//! What ringgate does not record is reported as zero, not invented: cache tokens (no
//! provider reports them to ringgate), tool calls (ringgate's agents have no tools), channels
//! and creators (sessions are created by the one operator). Latency is a run's duration, from
//! the user's turn to the end of the reply.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::{calendar::date_of_day, config::Price};

const DAY_MS: i64 = 86_400_000;

/// The creator key the original gives sessions without a known creator.
const UNKNOWN_CREATOR: &str = "[\"unknown\"]";

/// A `sessions.usage` query, resolved: `[start_ms, end_ms)` and the day boundary offset.
#[derive(Debug, Clone)]
pub struct SessionsUsageQuery {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Minutes east of UTC that days are counted in.
    pub offset_min: i64,
    pub agent_id: Option<String>,
    pub key: Option<String>,
    pub limit: usize,
    pub pricing: Vec<(String, Price)>,
}

impl SessionsUsageQuery {
    fn day(&self, ms: i64) -> String {
        date_of_day((ms + self.offset_min * 60_000).div_euclid(DAY_MS))
    }
}

/// Token and cost totals (`CostUsageTotals`).
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    input: u64,
    output: u64,
    input_cost: f64,
    output_cost: f64,
    missing: u64,
}

impl Totals {
    fn add_run(&mut self, input: u64, output: u64, price: Option<&Price>) {
        self.input += input;
        self.output += output;
        match price {
            Some(p) => {
                self.input_cost += input as f64 * p.input / 1e6;
                self.output_cost += output as f64 * p.output / 1e6;
            }
            None if input + output > 0 => self.missing += 1,
            None => {}
        }
    }

    fn add(&mut self, o: &Totals) {
        self.input += o.input;
        self.output += o.output;
        self.input_cost += o.input_cost;
        self.output_cost += o.output_cost;
        self.missing += o.missing;
    }

    fn tokens(&self) -> u64 {
        self.input + self.output
    }

    fn cost(&self) -> f64 {
        self.input_cost + self.output_cost
    }

    fn json(&self) -> serde_json::Map<String, Value> {
        let r = |v: f64| (v * 1e6).round() / 1e6;
        let v = json!({
            "input": self.input, "output": self.output, "cacheRead": 0, "cacheWrite": 0,
            "totalTokens": self.tokens(), "totalCost": r(self.cost()),
            "inputCost": r(self.input_cost), "outputCost": r(self.output_cost),
            "cacheReadCost": 0, "cacheWriteCost": 0, "missingCostEntries": self.missing,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("an object literal"),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Messages {
    total: u64,
    user: u64,
    assistant: u64,
    errors: u64,
}

impl Messages {
    fn add(&mut self, o: &Messages) {
        self.total += o.total;
        self.user += o.user;
        self.assistant += o.assistant;
        self.errors += o.errors;
    }

    fn json(&self) -> Value {
        json!({"total": self.total, "user": self.user, "assistant": self.assistant,
               "toolCalls": 0, "toolResults": 0, "errors": self.errors})
    }
}

/// Run durations (ms), summarised as the original's latency stats.
#[derive(Debug, Default, Clone)]
struct Latency(Vec<u64>);

impl Latency {
    fn json(&self) -> Option<Value> {
        if self.0.is_empty() {
            return None;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let n = v.len();
        let p95 = v[((n * 95).div_ceil(100)).saturating_sub(1).min(n - 1)];
        Some(json!({
            "count": n,
            "avgMs": v.iter().sum::<u64>() as f64 / n as f64,
            "minMs": v[0],
            "maxMs": v[n - 1],
            "p95Ms": p95,
        }))
    }
}

/// One session's usage in the range.
#[derive(Debug, Default)]
struct SessionUsage {
    totals: Totals,
    messages: Messages,
    first: Option<i64>,
    last: Option<i64>,
    days: BTreeMap<String, (Totals, Messages)>,
    models: ModelTotals,
    /// (date, provider, model) → (runs, totals).
    day_models: BTreeMap<(String, String, String), (u64, Totals)>,
    latency: Latency,
    day_latency: BTreeMap<String, Latency>,
}

impl SessionUsage {
    fn touch(&mut self, at: i64) {
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }

    fn counted(&self) -> bool {
        self.first.is_some() || self.messages.total > 0
    }

    fn json(&self, session_id: &str) -> Value {
        let mut m = self.totals.json();
        let mut put = |k: &str, v: Value| {
            m.insert(k.into(), v);
        };
        put("sessionId", json!(session_id));
        put("firstActivity", json!(self.first));
        put("lastActivity", json!(self.last));
        put(
            "durationMs",
            json!(self.first.zip(self.last).map(|(f, l)| (l - f).max(0))),
        );
        put("activityDates", json!(self.days.keys().collect::<Vec<_>>()));
        put(
            "dailyBreakdown",
            Value::Array(
                self.days
                    .iter()
                    .map(|(d, (t, _))| {
                        let mut row = t.json();
                        row.insert("date".into(), json!(d));
                        row.insert("tokens".into(), json!(t.tokens()));
                        row.insert("cost".into(), row["totalCost"].clone());
                        Value::Object(row)
                    })
                    .collect(),
            ),
        );
        put(
            "dailyMessageCounts",
            Value::Array(
                self.days
                    .iter()
                    .map(|(d, (_, msgs))| {
                        let mut row = msgs.json();
                        row["date"] = json!(d);
                        row
                    })
                    .collect(),
            ),
        );
        put("dailyModelUsage", day_models_json(&self.day_models));
        put("messageCounts", self.messages.json());
        put(
            "toolUsage",
            json!({"totalCalls": 0, "uniqueTools": 0, "tools": []}),
        );
        put("modelUsage", models_json(&self.models));
        if let Some(l) = self.latency.json() {
            put("latency", l);
        }
        put("dailyLatency", day_latency_json(&self.day_latency));
        Value::Object(m)
    }
}

/// (provider, model) → (runs, totals).
type ModelTotals = BTreeMap<(String, String), (u64, Totals)>;

fn models_json(models: &ModelTotals) -> Value {
    let mut rows: Vec<_> = models.iter().collect();
    rows.sort_by(|a, b| {
        b.1 .1
            .cost()
            .total_cmp(&a.1 .1.cost())
            .then(b.1 .1.tokens().cmp(&a.1 .1.tokens()))
    });
    Value::Array(
        rows.into_iter()
            .map(|((provider, model), (count, t))| {
                json!({"provider": provider, "model": model, "count": count, "totals": t.json()})
            })
            .collect(),
    )
}

fn day_models_json(m: &BTreeMap<(String, String, String), (u64, Totals)>) -> Value {
    Value::Array(
        m.iter()
            .map(|((date, provider, model), (count, t))| {
                json!({"date": date, "provider": provider, "model": model,
                       "tokens": t.tokens(), "cost": t.json()["totalCost"], "count": count})
            })
            .collect(),
    )
}

fn day_latency_json(m: &BTreeMap<String, Latency>) -> Value {
    Value::Array(
        m.iter()
            .filter_map(|(d, l)| {
                let mut v = l.json()?;
                v["date"] = json!(d);
                Some(v)
            })
            .collect(),
    )
}

/// `provider/model` as stored → (provider, model); a bare model is ringgate's own.
fn split_model(model: &str) -> (String, String) {
    match model.split_once('/') {
        Some((p, m)) => (p.to_owned(), m.to_owned()),
        None => ("ringgate".to_owned(), model.to_owned()),
    }
}

/// A session row of the store.
struct SessionRow {
    key: String,
    session_id: String,
    agent_id: String,
    updated_at: i64,
}

/// Reads and aggregates (runs on the scan thread's read-only connection).
pub fn sessions_usage(c: &Connection, q: &SessionsUsageQuery, now: u64) -> rusqlite::Result<Value> {
    let mut sessions: Vec<SessionRow> = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT key, session_id, agent_id, updated_at_ms FROM sessions
             WHERE (?1 IS NULL OR agent_id = ?1) AND (?2 IS NULL OR key = ?2)
             ORDER BY updated_at_ms DESC",
        )?;
        let rows = stmt.query_map(params![q.agent_id, q.key], |r| {
            Ok(SessionRow {
                key: r.get(0)?,
                session_id: r.get(1)?,
                agent_id: r.get(2)?,
                updated_at: r.get(3)?,
            })
        })?;
        for r in rows {
            sessions.push(r?);
        }
    }
    let index: BTreeMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.clone(), i))
        .collect();
    let by_id: BTreeMap<String, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.session_id.clone(), i))
        .collect();
    let mut usage: Vec<SessionUsage> = sessions.iter().map(|_| SessionUsage::default()).collect();

    let mut stmt = c.prepare_cached(
        "SELECT session_key, started_at_ms, ended_at_ms, input_tokens, output_tokens,
                COALESCE(model, ''), status
         FROM runs WHERE started_at_ms >= ?1 AND started_at_ms < ?2 AND status != 'running'",
    )?;
    let runs = stmt.query_map(params![q.start_ms, q.end_ms], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, i64>(3)?.max(0) as u64,
            r.get::<_, i64>(4)?.max(0) as u64,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    for run in runs {
        let (key, started, ended, input, output, model, status) = run?;
        let Some(&i) = index.get(&key) else { continue };
        let u = &mut usage[i];
        let price = q.pricing.iter().find(|(m, _)| *m == model).map(|(_, p)| p);
        let mut t = Totals::default();
        t.add_run(input, output, price);
        u.totals.add(&t);
        u.touch(started);
        let day = q.day(started);
        u.days.entry(day.clone()).or_default().0.add(&t);
        let (provider, name) = split_model(&model);
        let e = u
            .models
            .entry((provider.clone(), name.clone()))
            .or_default();
        e.0 += 1;
        e.1.add(&t);
        let e = u
            .day_models
            .entry((day.clone(), provider, name))
            .or_default();
        e.0 += 1;
        e.1.add(&t);
        if let (Some(end), "ok") = (ended, status.as_str()) {
            let ms = (end - started).max(0) as u64;
            u.latency.0.push(ms);
            u.day_latency.entry(day).or_default().0.push(ms);
        }
    }

    let mut stmt = c.prepare_cached(
        "SELECT session_id, role, json_extract(body, '$.timestamp'),
                json_extract(body, '$.stopReason') IN ('error', 'aborted', 'timeout')
         FROM messages",
    )?;
    let msgs = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<bool>>(3)?.unwrap_or(false),
        ))
    })?;
    for m in msgs {
        let (sid, role, ts, error) = m?;
        let (Some(&i), Some(ts)) = (by_id.get(&sid), ts) else {
            continue;
        };
        if ts < q.start_ms || ts >= q.end_ms {
            continue;
        }
        let one = Messages {
            total: 1,
            user: u64::from(role == "user"),
            assistant: u64::from(role == "assistant"),
            errors: u64::from(error),
        };
        let u = &mut usage[i];
        u.messages.add(&one);
        u.touch(ts);
        u.days.entry(q.day(ts)).or_default().1.add(&one);
    }
    Ok(respond(q, &sessions, &usage, now))
}

fn respond(
    q: &SessionsUsageQuery,
    sessions: &[SessionRow],
    usage: &[SessionUsage],
    now: u64,
) -> Value {
    let mut totals = Totals::default();
    let mut messages = Messages::default();
    let mut session_count = 0;
    let mut longest = 0;
    let mut by_model: ModelTotals = BTreeMap::new();
    let mut by_provider: BTreeMap<String, (u64, Totals)> = BTreeMap::new();
    let mut by_agent: BTreeMap<String, Totals> = BTreeMap::new();
    let mut days: BTreeMap<String, (Totals, Messages)> = BTreeMap::new();
    let mut day_models: BTreeMap<(String, String, String), (u64, Totals)> = BTreeMap::new();
    let mut latency = Latency::default();
    let mut day_latency: BTreeMap<String, Latency> = BTreeMap::new();
    let mut activity: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    for (s, u) in sessions.iter().zip(usage) {
        if !u.counted() {
            continue;
        }
        session_count += 1;
        totals.add(&u.totals);
        messages.add(&u.messages);
        longest = longest.max(u.first.zip(u.last).map_or(0, |(f, l)| l - f));
        for (k, (n, t)) in &u.models {
            let e = by_model.entry(k.clone()).or_default();
            e.0 += n;
            e.1.add(t);
            let e = by_provider.entry(k.0.clone()).or_default();
            e.0 += n;
            e.1.add(t);
        }
        by_agent
            .entry(s.agent_id.clone())
            .or_default()
            .add(&u.totals);
        for (d, (t, m)) in &u.days {
            let e = days.entry(d.clone()).or_default();
            e.0.add(t);
            e.1.add(m);
        }
        for (k, (n, t)) in &u.day_models {
            let e = day_models.entry(k.clone()).or_default();
            e.0 += n;
            e.1.add(t);
        }
        latency.0.extend(&u.latency.0);
        for (d, l) in &u.day_latency {
            day_latency.entry(d.clone()).or_default().0.extend(&l.0);
        }
        *activity
            .entry(
                u.days
                    .keys()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            )
            .or_default() += 1;
        if rows.len() < q.limit {
            rows.push(json!({
                "key": s.key,
                "sessionId": s.session_id,
                "scope": "instance",
                "updatedAt": s.updated_at,
                "agentId": s.agent_id,
                "creatorKey": UNKNOWN_CREATOR,
                "chatType": "direct",
                "usage": u.json(&s.session_id),
                "hasContextWeight": false,
            }));
        }
    }
    let totals_json = Value::Object(totals.json());
    let mut providers: Vec<Value> = by_provider
        .iter()
        .map(|(p, (n, t))| json!({"provider": p, "count": n, "totals": t.json()}))
        .collect();
    providers.sort_by(|a, b| {
        b["totals"]["totalCost"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a["totals"]["totalCost"].as_f64().unwrap_or(0.0))
    });
    let creator_daily: Vec<Value> = days
        .iter()
        .map(|(d, (t, _))| {
            let mut row = t.json();
            row.insert("date".into(), json!(d));
            Value::Object(row)
        })
        .collect();
    let mut aggregates = json!({
        "sessionCount": session_count,
        "messages": messages.json(),
        "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
        "byModel": models_json(&by_model),
        "byProvider": providers,
        "byAgent": by_agent.iter().map(|(a, t)| json!({"agentId": a, "totals": t.json()})).collect::<Vec<_>>(),
        "byChannel": [],
        "byCreator": if session_count == 0 { json!([]) } else { json!([{
            "key": UNKNOWN_CREATOR,
            "totals": totals_json,
            "sessionCount": session_count,
            "daily": creator_daily,
            "sessionActivity": activity.iter().map(|(d, n)| json!({"dates": d, "sessionCount": n})).collect::<Vec<_>>(),
        }]) },
        "costDaily": creator_daily,
        "dailyLatency": day_latency_json(&day_latency),
        "modelDaily": day_models_json(&day_models),
        "daily": days.iter().map(|(d, (t, m))| json!({
            "date": d, "tokens": t.tokens(), "cost": t.json()["totalCost"],
            "messages": m.total, "toolCalls": 0, "errors": m.errors,
        })).collect::<Vec<_>>(),
    });
    if longest > 0 {
        aggregates["longestSessionDurationMs"] = json!(longest);
    }
    if let Some(l) = latency.json() {
        aggregates["latency"] = l;
    }
    json!({
        "updatedAt": now,
        "startDate": q.day(q.start_ms),
        "endDate": q.day(q.end_ms - 1),
        "sessions": rows,
        "totals": totals_json,
        "aggregates": aggregates,
        "creatorOptions": if session_count == 0 { json!([]) } else { json!([{"key": UNKNOWN_CREATOR}]) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            &[
                crate::store::sessions::MIGRATION,
                crate::store::sessions::MIGRATION_RUN_IDEMPOTENCY,
                crate::store::sessions::MIGRATION_ROW_SUMMARY,
            ]
            .concat(),
        )
        .unwrap();
        c
    }

    fn session(c: &Connection, key: &str, id: &str, agent: &str) {
        c.execute(
            "INSERT INTO sessions (key, session_id, agent_id, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, 0, 5)",
            params![key, id, agent],
        )
        .unwrap();
    }

    fn run(
        c: &Connection,
        key: &str,
        id: &str,
        at: i64,
        dur: i64,
        tokens: (i64, i64),
        model: &str,
    ) {
        c.execute(
            "INSERT INTO runs (run_id, session_key, agent_id, status, started_at_ms, ended_at_ms, input_tokens, output_tokens, model)
             VALUES (?1, ?2, 'main', 'ok', ?3, ?4, ?5, ?6, ?7)",
            params![id, key, at, at + dur, tokens.0, tokens.1, model],
        )
        .unwrap();
    }

    fn msg(c: &Connection, sid: &str, seq: i64, role: &str, ts: i64) {
        c.execute(
            "INSERT INTO messages (session_id, seq, id, role, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                sid,
                seq,
                format!("{sid}-{seq}"),
                role,
                json!({"role": role, "timestamp": ts}).to_string()
            ],
        )
        .unwrap();
    }

    fn query(start_day: i64, days: i64) -> SessionsUsageQuery {
        SessionsUsageQuery {
            start_ms: start_day * DAY_MS,
            end_ms: (start_day + days) * DAY_MS,
            offset_min: 0,
            agent_id: Some("main".into()),
            key: None,
            limit: 50,
            pricing: vec![(
                "openai/m".into(),
                Price {
                    input: 2.0,
                    output: 8.0,
                },
            )],
        }
    }

    #[test]
    fn sums_runs_and_messages_per_session_day_and_model() {
        let c = db();
        session(&c, "a", "sa", "main");
        session(&c, "b", "sb", "main");
        session(&c, "other", "so", "ops");
        run(
            &c,
            "a",
            "r1",
            DAY_MS + 10,
            400,
            (1_000_000, 500_000),
            "openai/m",
        );
        run(&c, "a", "r2", 2 * DAY_MS, 200, (10, 20), "echo");
        run(&c, "b", "r3", 2 * DAY_MS + 1, 100, (5, 5), "echo");
        run(&c, "other", "r4", 2 * DAY_MS, 100, (7, 7), "echo");
        run(&c, "a", "old", 10, 100, (99, 99), "echo");
        for (i, (role, ts)) in [
            ("user", DAY_MS + 10),
            ("assistant", DAY_MS + 410),
            ("user", 2 * DAY_MS),
        ]
        .into_iter()
        .enumerate()
        {
            msg(&c, "sa", i as i64 + 1, role, ts);
        }
        let v = sessions_usage(&c, &query(1, 2), 7).unwrap();
        assert_eq!(v["startDate"], "1970-01-02");
        assert_eq!(v["endDate"], "1970-01-03");
        // $2 × 1M in + $8 × 0.5M out = $6; the echo runs have no price.
        assert_eq!(v["totals"]["totalCost"], 6.0);
        assert_eq!(v["totals"]["totalTokens"], 1_500_040);
        assert_eq!(v["totals"]["missingCostEntries"], 2);
        let agg = &v["aggregates"];
        assert_eq!(agg["sessionCount"], 2);
        assert_eq!(agg["messages"]["total"], 3);
        assert_eq!(agg["messages"]["user"], 2);
        assert_eq!(agg["byModel"][0]["model"], "m", "the costliest model first");
        assert_eq!(agg["byModel"][1]["count"], 2);
        assert_eq!(agg["daily"].as_array().unwrap().len(), 2);
        assert_eq!(agg["daily"][0]["messages"], 2);
        assert_eq!(agg["latency"]["count"], 3);
        assert_eq!(agg["latency"]["maxMs"], 400);
        let a = &v["sessions"][0]["usage"];
        assert_eq!(v["sessions"][0]["key"], "a");
        assert_eq!(a["firstActivity"], DAY_MS + 10);
        assert_eq!(a["lastActivity"], 2 * DAY_MS);
        assert_eq!(a["activityDates"], json!(["1970-01-02", "1970-01-03"]));
        assert_eq!(a["modelUsage"].as_array().unwrap().len(), 2);
        // Another agent's session is not in this agent's answer.
        assert!(v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["agentId"] == "main"));
    }

    #[test]
    fn days_follow_the_requested_offset_and_limit_cuts_rows_not_totals() {
        let c = db();
        session(&c, "a", "sa", "main");
        session(&c, "b", "sb", "main");
        // 23:30 UTC on day 1 is day 2 at UTC+1.
        run(&c, "a", "r1", 2 * DAY_MS - 30 * 60_000, 10, (1, 1), "echo");
        run(&c, "b", "r2", 2 * DAY_MS + 10, 10, (1, 1), "echo");
        let mut q = query(1, 3);
        q.offset_min = 60;
        q.limit = 1;
        let v = sessions_usage(&c, &q, 0).unwrap();
        assert_eq!(v["sessions"].as_array().unwrap().len(), 1);
        assert_eq!(v["aggregates"]["sessionCount"], 2);
        assert_eq!(v["aggregates"]["daily"][0]["date"], "1970-01-03");
        assert_eq!(v["aggregates"]["daily"].as_array().unwrap().len(), 1);
        let empty = sessions_usage(&c, &query(40, 2), 0).unwrap();
        assert_eq!(empty["sessions"], json!([]));
        assert_eq!(empty["aggregates"]["byCreator"], json!([]));
    }
}
