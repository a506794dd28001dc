//! Hook mapping templates: `{{expr}}` replaced from the request, as the original's
//! `renderTemplate` does. `expr` is `path`, `now`, `headers.<name>`, `query.<key>`,
//! `payload.<path>` or a bare payload path (`messages[0].from`). A missing value renders
//! empty, a string as itself, a number or boolean as text, anything else as JSON.

use serde_json::Value;

/// Path segments never followed (the original blocks them against prototype walks).
pub const BLOCKED_KEYS: [&str; 3] = ["__proto__", "prototype", "constructor"];

/// Longest rendering kept: a template can repeat a large payload field many times.
const MAX_RENDERED: usize = 1024 * 1024;

/// What a template can read.
pub struct Ctx<'a> {
    pub payload: &'a Value,
    /// Lowercased names; repeated headers joined with `, `.
    pub headers: &'a [(String, String)],
    /// Decoded query pairs (the last of a repeated key wins, as `Object.fromEntries`).
    pub query: &'a [(String, String)],
    /// The sub-path after the hooks base (`gmail`).
    pub path: &'a str,
    /// ISO-8601 time for `{{now}}`.
    pub now: &'a str,
    /// A fan-out item: `payload[key]` reads as `[item]` (the original gives each item a copy
    /// of the payload with that key replaced; reading through is the same, without the copy).
    pub each: Option<(&'a str, &'a Value)>,
}

/// Does `s` hold a `{{…}}` expression?
pub fn has_expressions(s: &str) -> bool {
    s.find("{{").is_some_and(|i| {
        s[i + 2..]
            .find("}}")
            .is_some_and(|j| !s[i + 2..i + 2 + j].trim().is_empty())
    })
}

/// Renders `template` (bounded to 1 MiB).
pub fn render(template: &str, ctx: &Ctx) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        // `[^}]+` then `}}`: the expression may not contain a `}`.
        match after.find('}') {
            Some(j) if j > 0 && after[j..].starts_with("}}") => {
                out.push_str(&value_text(resolve(after[..j].trim(), ctx)));
                rest = &after[j + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
        if out.len() > MAX_RENDERED {
            break;
        }
    }
    out.push_str(rest);
    if out.len() > MAX_RENDERED {
        let mut end = MAX_RENDERED;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Renders an optional field: trimmed, and empty means unset.
pub fn render_optional(template: Option<&str>, ctx: &Ctx) -> Option<String> {
    let t = template.filter(|t| !t.is_empty())?;
    let r = render(t, ctx);
    let r = r.trim();
    (!r.is_empty()).then(|| r.to_owned())
}

fn value_text(v: Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(other) => other.to_string(),
    }
}

fn resolve(expr: &str, ctx: &Ctx) -> Option<Value> {
    if expr == "path" {
        return Some(Value::String(ctx.path.to_owned()));
    }
    if expr == "now" {
        return Some(Value::String(ctx.now.to_owned()));
    }
    let lookup = |pairs: &[(String, String)], key: &str| {
        // One segment only: header and query values are strings.
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Value::String(v.clone()))
    };
    if let Some(name) = expr.strip_prefix("headers.") {
        return lookup(ctx.headers, name);
    }
    if let Some(k) = expr.strip_prefix("query.") {
        return lookup(ctx.query, k);
    }
    let path = expr.strip_prefix("payload.").unwrap_or(expr);
    if let Some((key, item)) = ctx.each {
        let mut segs = segments(path).into_iter();
        if matches!(segs.next(), Some(Seg::Key(k)) if k == key) {
            // `[item]`: index 0 is the item, any other index is missing.
            return match segs.next() {
                None => Some(Value::Array(vec![item.clone()])),
                Some(Seg::Index(0)) => walk(item, segs).cloned(),
                Some(_) => None,
            };
        }
    }
    get_by_path(ctx.payload, path).cloned()
}

/// `a.b[0].c` into `input`; `None` where a step is missing or blocked.
pub fn get_by_path<'a>(input: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    walk(input, segments(path).into_iter())
}

fn walk<'a, 'p>(input: &'a Value, segs: impl Iterator<Item = Seg<'p>>) -> Option<&'a Value> {
    let mut cur = input;
    for seg in segs {
        match seg {
            Seg::Index(i) => cur = cur.as_array()?.get(i)?,
            Seg::Key(k) => {
                if BLOCKED_KEYS.contains(&k) {
                    return None;
                }
                cur = cur.as_object()?.get(k)?;
            }
        }
    }
    Some(cur)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The original's `/([^.[\]]+)|(\[(\d+)\])/g`: keys between `.`, `[`, `]`, and `[n]` indexes
/// (a bracket holding anything else is skipped).
fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' | b']' => i += 1,
            b'[' => {
                let close = path[i + 1..].find(']').map(|j| i + 1 + j);
                match close {
                    Some(c) if c > i + 1 && path[i + 1..c].bytes().all(|d| d.is_ascii_digit()) => {
                        // An index too large for memory cannot exist in the payload.
                        out.push(Seg::Index(path[i + 1..c].parse().unwrap_or(usize::MAX)));
                        i = c + 1;
                    }
                    _ => i += 1,
                }
            }
            _ => {
                let end = path[i..]
                    .find(['.', '[', ']'])
                    .map_or(path.len(), |j| i + j);
                out.push(Seg::Key(&path[i..end]));
                i = end;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(payload: &'a Value, headers: &'a [(String, String)]) -> Ctx<'a> {
        Ctx {
            payload,
            headers,
            query: &[],
            path: "gmail",
            now: "2026-01-01T00:00:00.000Z",
            each: None,
        }
    }

    #[test]
    fn renders_payload_headers_path_and_kinds() {
        let p =
            json!({"messages": [{"from": "a@b", "n": 3, "ok": true, "o": {"x": 1}}], "s": null});
        let h = vec![("x-source".to_owned(), "gh, gl".to_owned())];
        let c = ctx(&p, &h);
        assert_eq!(
            render("{{ messages[0].from }}|{{payload.messages[0].n}}|{{messages[0].ok}}|{{messages[0].o}}|{{s}}|{{missing.x}}", &c),
            "a@b|3|true|{\"x\":1}||"
        );
        assert_eq!(
            render("{{headers.x-source}} {{path}} {{now}}", &c),
            "gh, gl gmail 2026-01-01T00:00:00.000Z"
        );
        assert_eq!(render("{{__proto__}}{{messages[0].constructor}}", &c), "");
        assert_eq!(render("{{}} {{a} {{", &c), "{{}} {{a} {{");
        assert_eq!(render("{{messages[99999999999999999999999].from}}", &c), "");
    }

    #[test]
    fn expressions_are_detected_and_optional_fields_trim() {
        assert!(has_expressions("hook:{{ id }}"));
        assert!(!has_expressions("hook:static") && !has_expressions("{{ }}"));
        let p = json!({"id": "  "});
        let c = ctx(&p, &[]);
        assert_eq!(render_optional(Some("{{id}}"), &c), None);
        assert_eq!(render_optional(Some(" x{{id}} "), &c), Some("x".into()));
    }

    #[test]
    fn a_fan_out_item_reads_as_a_one_item_array() {
        let p = json!({"messages": [{"id": "a"}, {"id": "b"}], "other": 1});
        let item = json!({"id": "b"});
        let mut c = ctx(&p, &[]);
        c.each = Some(("messages", &item));
        assert_eq!(
            render("{{messages[0].id}} {{payload.messages[0].id}} {{messages[1].id}} {{messages}} {{other}}", &c),
            "b b  [{\"id\":\"b\"}] 1"
        );
    }

    #[test]
    fn a_huge_rendering_is_bounded() {
        let p = json!({"big": "x".repeat(600_000)});
        let c = ctx(&p, &[]);
        assert!(render("{{big}}{{big}}{{big}}", &c).len() <= MAX_RENDERED);
    }
}
