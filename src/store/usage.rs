//! `usage.status` and `usage.cost`, computed from the run records (`runs` table: tokens,
//! model, timings) on the storage thread. Costs come from `ringgate.pricing`; runs of models
//! without a price are counted in `missingCostEntries` rather than guessed.

use rusqlite::{params, Connection};
use serde_json::{json, Value};

use crate::{calendar::date_of_day, config::Price};

const DAY_MS: u64 = 86_400_000;

/// A `usage.cost` query: `[start_ms, end_ms)` in UTC days, optionally one agent.
#[derive(Debug, Clone)]
pub struct CostQuery {
    pub start_ms: u64,
    pub end_ms: u64,
    pub agent_id: Option<String>,
    pub pricing: Vec<(String, Price)>,
}

fn price_of<'a>(pricing: &'a [(String, Price)], model: &str) -> Option<&'a Price> {
    pricing.iter().find(|(m, _)| m == model).map(|(_, p)| p)
}

/// USD for the tokens at `price` (per million).
fn cost(p: &Price, input: u64, output: u64) -> f64 {
    (input as f64 * p.input + output as f64 * p.output) / 1_000_000.0
}

#[derive(Default, Clone, Copy)]
struct Totals {
    input: u64,
    output: u64,
    cost: f64,
    missing: u64,
    runs: u64,
}

impl Totals {
    fn add(&mut self, input: u64, output: u64, price: Option<&Price>) {
        self.input += input;
        self.output += output;
        self.runs += 1;
        match price {
            Some(p) => self.cost += cost(p, input, output),
            None if input + output > 0 => self.missing += 1,
            None => {}
        }
    }

    fn json(&self) -> Value {
        json!({
            "input": self.input, "output": self.output, "cacheRead": 0, "cacheWrite": 0,
            "totalTokens": self.input + self.output,
            "totalCost": (self.cost * 1e6).round() / 1e6,
            "missingCostEntries": self.missing,
            "runs": self.runs,
        })
    }
}

/// `usage.cost`: per-day and total tokens and cost of finished runs started in the range.
pub fn cost_summary(c: &Connection, q: &CostQuery, now: u64) -> rusqlite::Result<Value> {
    let mut stmt = c.prepare_cached(
        "SELECT started_at_ms, input_tokens, output_tokens, COALESCE(model, ''), agent_id FROM runs
         WHERE started_at_ms >= ?1 AND started_at_ms < ?2 AND status != 'running'
         ORDER BY started_at_ms",
    )?;
    let rows = stmt.query_map(params![q.start_ms as i64, q.end_ms as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut daily: Vec<(i64, Totals)> = Vec::new();
    let mut total = Totals::default();
    let mut by_model: Vec<(String, Totals)> = Vec::new();
    for row in rows {
        let (at, input, output, model, agent) = row?;
        if q.agent_id.as_ref().is_some_and(|a| *a != agent) {
            continue;
        }
        let (input, output) = (input.max(0) as u64, output.max(0) as u64);
        let price = price_of(&q.pricing, &model);
        let day = at.div_euclid(DAY_MS as i64);
        match daily.last_mut() {
            Some((d, t)) if *d == day => t.add(input, output, price),
            _ => {
                let mut t = Totals::default();
                t.add(input, output, price);
                daily.push((day, t));
            }
        }
        total.add(input, output, price);
        match by_model.iter_mut().find(|(m, _)| *m == model) {
            Some((_, t)) => t.add(input, output, price),
            None => {
                let mut t = Totals::default();
                t.add(input, output, price);
                by_model.push((model, t));
            }
        }
    }
    let days = q.end_ms.saturating_sub(q.start_ms).div_ceil(DAY_MS);
    Ok(json!({
        "updatedAt": now,
        "startDate": date_of_day((q.start_ms / DAY_MS) as i64),
        "endDate": date_of_day((q.end_ms.saturating_sub(1) / DAY_MS) as i64),
        "days": days,
        "daily": daily.iter().map(|(d, t)| {
            let mut v = t.json();
            v["date"] = json!(date_of_day(*d));
            v
        }).collect::<Vec<_>>(),
        "totals": total.json(),
        "byModel": by_model.iter().map(|(m, t)| {
            let mut v = t.json();
            v["model"] = json!(m);
            v["priced"] = json!(price_of(&q.pricing, m).is_some());
            v
        }).collect::<Vec<_>>(),
    }))
}

/// `usage.status`. Its `providers` are the original's provider quota windows (`usedPercent`
/// of a plan's limit, fetched from the provider account); ringgate signs in to no provider
/// account and knows no quota, so the list is empty — a window without `usedPercent` shows
/// as "NaN% left" on the dashboard's Models page. What ringgate does know, per model, runs and
/// tokens in the last 24 hours and 30 days from its run records, is in `runsByModel`.
pub fn status(c: &Connection, now: u64) -> rusqlite::Result<Value> {
    let mut stmt = c.prepare_cached(
        "SELECT COALESCE(model, ''),
                SUM(CASE WHEN started_at_ms >= ?1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN started_at_ms >= ?1 THEN input_tokens + output_tokens ELSE 0 END),
                COUNT(*), SUM(input_tokens + output_tokens), MAX(started_at_ms),
                SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END)
         FROM runs WHERE started_at_ms >= ?2 GROUP BY 1 ORDER BY 1",
    )?;
    let day_ago = now.saturating_sub(DAY_MS) as i64;
    let month_ago = now.saturating_sub(30 * DAY_MS) as i64;
    let rows = stmt.query_map(params![day_ago, month_ago], |r| {
        let model: String = r.get(0)?;
        let (provider, name) = model.split_once('/').unwrap_or(("", model.as_str()));
        Ok(json!({
            "provider": provider,
            "model": name,
            "displayName": model,
            "windows": [
                {"label": "24h", "runs": r.get::<_, i64>(1)?, "tokens": r.get::<_, i64>(2)?},
                {"label": "30d", "runs": r.get::<_, i64>(3)?, "tokens": r.get::<_, i64>(4)?},
            ],
            "lastRunAt": r.get::<_, i64>(5)?,
            "errors30d": r.get::<_, i64>(6)?,
        }))
    })?;
    // Computed on request from the run records: never a background refresh in flight.
    Ok(
        json!({"updatedAt": now, "providers": [], "runsByModel": rows.collect::<rusqlite::Result<Vec<_>>>()?, "refreshing": false}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_use_configured_prices() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(crate::store::sessions::MIGRATION).unwrap();
        let ins = |id: &str, at: u64, i: i64, o: i64, model: &str, agent: &str| {
            c.execute(
                "INSERT INTO runs (run_id, session_key, agent_id, status, started_at_ms, ended_at_ms, input_tokens, output_tokens, model)
                 VALUES (?1, 'k', ?6, 'ok', ?2, ?2, ?3, ?4, ?5)",
                params![id, at as i64, i, o, model, agent],
            )
            .unwrap();
        };
        ins("a", DAY_MS, 1_000_000, 500_000, "openai/m", "main");
        ins("b", DAY_MS + 5, 10, 10, "ringgate/echo", "main");
        ins("c", 2 * DAY_MS, 2_000_000, 0, "openai/m", "other");
        let q = CostQuery {
            start_ms: DAY_MS,
            end_ms: 3 * DAY_MS,
            agent_id: None,
            pricing: vec![(
                "openai/m".into(),
                Price {
                    input: 2.0,
                    output: 8.0,
                },
            )],
        };
        let v = cost_summary(&c, &q, 0).unwrap();
        assert_eq!(v["days"], 2);
        assert_eq!(v["daily"][0]["date"], "1970-01-02");
        // 1M in × $2 + 0.5M out × $8 = $6; the unpriced echo run is counted as missing.
        assert_eq!(v["daily"][0]["totalCost"], 6.0);
        assert_eq!(v["daily"][0]["missingCostEntries"], 1);
        assert_eq!(v["totals"]["totalCost"], 10.0);
        assert_eq!(v["totals"]["totalTokens"], 3_500_020);
        let q = CostQuery {
            agent_id: Some("other".into()),
            ..q
        };
        let v = cost_summary(&c, &q, 0).unwrap();
        assert_eq!(v["totals"]["totalCost"], 4.0);
        assert_eq!(v["daily"].as_array().unwrap().len(), 1);
        let s = status(&c, 2 * DAY_MS + 10).unwrap();
        assert_eq!(s["providers"], json!([]));
        let p = &s["runsByModel"][0];
        assert_eq!(
            (p["provider"].as_str(), p["model"].as_str()),
            (Some("openai"), Some("m"))
        );
        assert_eq!(p["windows"][0]["runs"], 1);
        assert_eq!(p["windows"][1]["runs"], 2);
    }
}
