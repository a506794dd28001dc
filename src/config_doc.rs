//! The config file as a document, for `config.*` over the wire: reading a snapshot with its
//! revision hash, redacting secrets (and restoring them when a client writes a redacted value
//! back), JSON merge patches with the original's guard against silently dropping array
//! entries, the list of changed paths, and atomic writes.
//!
//! Everything here does blocking file IO or pure work; it runs on the storage thread, never on
//! a shard.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// What clients see in place of a secret (the original's sentinel, so a client that writes a
/// `config.get` result back keeps the secret).
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

/// The config file as read from disk.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub exists: bool,
    /// The file's text, unredacted.
    pub raw: Option<String>,
    /// The parsed document (`{}` when absent or unparsable).
    pub parsed: Value,
    /// Revision of the raw text; `None` when the file does not exist.
    pub hash: Option<String>,
    /// Parse or validation problems (empty when valid).
    pub issues: Vec<String>,
}

impl Snapshot {
    pub fn valid(&self) -> bool {
        self.issues.is_empty()
    }
}

/// The revision hash of a file's text: opaque to clients, equal iff the bytes are.
pub fn hash(raw: &str) -> String {
    format!(
        "sha256:{}",
        URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes()))
    )
}

/// The revision hash of a config file that does not exist.
pub fn missing_hash() -> String {
    hash("")
}

/// Reads the file (a missing file is an empty, valid document). Validation issues are added
/// by the caller, which knows the config rules.
pub fn read(path: &Path) -> Snapshot {
    let raw = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // No file is a revision too (the empty one): a writer that read it passes its
            // hash, and a file created meanwhile is then a conflict.
            return Snapshot {
                path: path.into(),
                exists: false,
                raw: None,
                parsed: json!({}),
                hash: Some(missing_hash()),
                issues: Vec::new(),
            };
        }
        Err(e) => {
            return Snapshot {
                path: path.into(),
                exists: true,
                raw: None,
                parsed: json!({}),
                hash: None,
                issues: vec![format!("cannot read {}: {e}", path.display())],
            }
        }
    };
    let (parsed, issues) = match json5::from_str::<Value>(&raw) {
        Ok(v) if v.is_object() => (v, Vec::new()),
        Ok(_) => (
            json!({}),
            vec!["config file must hold an object".to_owned()],
        ),
        Err(e) => (json!({}), vec![format!("JSON5 parse failed: {e}")]),
    };
    Snapshot {
        path: path.into(),
        exists: true,
        hash: Some(hash(&raw)),
        raw: Some(raw),
        parsed,
        issues,
    }
}

/// Is the value at this dotted path a secret? Shared secrets, provider API keys and channel
/// signing secrets.
pub fn is_secret_path(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    matches!(last, "token" | "password" | "apiKey" | "secret")
}

/// Whether the string at `path` is a secret: a secret key's value, or NATS URLs carrying a
/// login (`nats://user:pass@host`).
fn is_secret(path: &str, s: &str) -> bool {
    !s.is_empty() && (is_secret_path(path) || (path == "ringgate.cluster.nats" && s.contains('@')))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A copy with every non-empty secret string replaced by [`REDACTED`].
pub fn redact(v: &Value) -> Value {
    redact_at(v, "")
}

fn redact_at(v: &Value, path: &str) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), redact_at(v, &join(path, k))))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| redact_at(v, path)).collect()),
        Value::String(s) if is_secret(path, s) => json!(REDACTED),
        other => other.clone(),
    }
}

/// The secret strings of a document (to scrub from raw text).
fn secrets(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| secrets(v, &join(path, k), out)),
        Value::Array(a) => a.iter().for_each(|v| secrets(v, path, out)),
        Value::String(s) if is_secret(path, s) => out.push(s.clone()),
        _ => {}
    }
}

/// The raw text with every secret value replaced by [`REDACTED`] (comments and layout kept).
/// A secret written with escapes does not appear literally in the text; then the text is
/// rendered from the redacted document instead (comments lost, nothing leaked).
pub fn redact_raw(raw: &str, parsed: &Value) -> String {
    let mut list = Vec::new();
    secrets(parsed, "", &mut list);
    if list.iter().any(|s| !raw.contains(s.as_str())) {
        return render(&redact(parsed));
    }
    // Longest first, so a secret that contains another is replaced whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    list.iter()
        .fold(raw.to_owned(), |text, s| text.replace(s.as_str(), REDACTED))
}

/// Puts the current secrets back where a submitted document carries [`REDACTED`]. A sentinel
/// with no current value to restore is an error naming the path.
pub fn restore_redacted(submitted: &Value, current: &Value) -> Result<Value, String> {
    restore_at(submitted, Some(current), "")
}

fn restore_at(v: &Value, cur: Option<&Value>, path: &str) -> Result<Value, String> {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let c = cur.and_then(|c| c.get(k));
                out.insert(k.clone(), restore_at(val, c, &join(path, k))?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| restore_at(v, cur.and_then(|c| c.get(i)), path))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::String(s) if s == REDACTED => match cur {
            Some(Value::String(c)) => Ok(json!(c)),
            _ => Err(format!(
                "{path}: redacted value has nothing to restore; send the real value"
            )),
        },
        other => Ok(other.clone()),
    }
}

/// RFC 7386 merge patch: objects merge, `null` deletes, anything else (arrays too) replaces.
pub fn merge_patch(base: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match base {
        Value::Object(b) => b.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Paths where applying `patch` to `base` would drop array entries (an array replaced by one
/// lacking some of its entries, deleted, or replaced by a non-array). The original refuses
/// these unless the path is listed in `replacePaths`.
pub fn destructive_array_paths(base: &Value, patch: &Value) -> Vec<String> {
    let mut out = Vec::new();
    destructive_at(base, patch, "", &mut out);
    out
}

fn destructive_at(base: &Value, patch: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(b), Value::Object(p)) = (base, patch) else {
        return;
    };
    for (k, pv) in p {
        let here = join(path, k);
        match b.get(k) {
            Some(Value::Array(old)) => {
                let keeps_all = pv
                    .as_array()
                    .is_some_and(|new| old.iter().all(|e| new.contains(e)));
                if !keeps_all {
                    out.push(here);
                }
            }
            Some(bv @ Value::Object(_)) if pv.is_object() => destructive_at(bv, pv, &here, out),
            Some(bv @ Value::Object(_)) => array_paths(bv, &here, out),
            _ => {}
        }
    }
}

/// Every array below `v` (an object replaced or deleted as a whole drops them all).
fn array_paths(v: &Value, path: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = v {
        for (k, v) in m {
            let here = join(path, k);
            match v {
                Value::Array(a) if !a.is_empty() => out.push(here),
                Value::Object(_) => array_paths(v, &here, out),
                _ => {}
            }
        }
    }
}

/// Dotted paths of the leaves that differ between two documents, sorted.
pub fn changed_paths(prev: &Value, next: &Value) -> Vec<String> {
    let mut out = BTreeSet::new();
    diff_at(prev, next, "", &mut out);
    out.into_iter().collect()
}

/// An object's map; a missing value (null) counts as an empty object, so an object added or
/// removed as a whole reports its leaves.
fn as_map(v: &Value) -> Option<&Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match v {
        Value::Object(m) => Some(m),
        Value::Null => Some(EMPTY.get_or_init(Map::new)),
        _ => None,
    }
}

fn diff_at(prev: &Value, next: &Value, path: &str, out: &mut BTreeSet<String>) {
    match (as_map(prev), as_map(next)) {
        (Some(a), Some(b)) if prev.is_object() || next.is_object() => {
            for k in a.keys().chain(b.keys()) {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                diff_at(x, y, &join(path, k), out);
            }
        }
        _ if prev != next => {
            out.insert(if path.is_empty() {
                "<root>".into()
            } else {
                path.into()
            });
        }
        _ => {}
    }
}

/// Writes the file atomically: a private temporary file in the same directory, fsync, rename
/// over the old one, fsync of the directory. A crash leaves either the old or the new file.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("config");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The text written for a document: pretty JSON (valid JSON5) with a trailing newline.
pub fn render(doc: &Value) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tracks_bytes() {
        assert_eq!(hash("{}"), hash("{}"));
        assert_ne!(hash("{}"), hash("{ }"));
        assert!(hash("x").starts_with("sha256:"));
    }

    #[test]
    fn secrets_are_redacted_and_restored() {
        let doc = json!({"gateway": {"auth": {"mode": "token", "token": "s3cret"}, "port": 1},
                         "ringgate": {"agents": {"a": {"apiKey": "k-1", "model": "m"}}}});
        let r = redact(&doc);
        assert_eq!(r["gateway"]["auth"]["token"], REDACTED);
        assert_eq!(r["gateway"]["auth"]["mode"], "token");
        assert_eq!(r["ringgate"]["agents"]["a"]["apiKey"], REDACTED);
        let nats = |url: &str| redact(&json!({"ringgate": {"cluster": {"nats": url}}}));
        assert_eq!(
            nats("nats://rg:pw@10.0.0.5:4222")["ringgate"]["cluster"]["nats"],
            REDACTED
        );
        assert_eq!(
            nats("nats://10.0.0.5:4222")["ringgate"]["cluster"]["nats"],
            "nats://10.0.0.5:4222"
        );
        assert_eq!(r["ringgate"]["agents"]["a"]["model"], "m");
        // Writing the redacted document back keeps the secrets.
        assert_eq!(restore_redacted(&r, &doc).unwrap(), doc);
        // A sentinel where nothing is stored is refused, naming the path.
        let bad = json!({"ringgate": {"agents": {"b": {"apiKey": REDACTED}}}});
        let e = restore_redacted(&bad, &doc).unwrap_err();
        assert!(e.starts_with("ringgate.agents.b.apiKey:"), "{e}");
    }

    #[test]
    fn raw_text_is_scrubbed_keeping_comments() {
        let raw = "{ // mine\n gateway: { auth: { token: \"abc123\" } } }";
        let parsed: Value = json5::from_str(raw).unwrap();
        let out = redact_raw(raw, &parsed);
        assert!(out.contains("// mine"));
        assert!(!out.contains("abc123"));
        assert!(out.contains(REDACTED));
        // An escaped secret is not in the text literally: the text is re-rendered instead.
        let raw = r#"{ gateway: { auth: { token: "a\u0062c" } } }"#;
        let parsed: Value = json5::from_str(raw).unwrap();
        assert_eq!(parsed["gateway"]["auth"]["token"], "abc");
        let out = redact_raw(raw, &parsed);
        assert!(!out.contains("abc") && !out.contains("u0062"), "{out}");
        assert!(out.contains(REDACTED));
        // Secrets inside arrays are found too.
        let doc = json!({"list": [{"secret": "s1"}]});
        assert_eq!(redact(&doc)["list"][0]["secret"], REDACTED);
    }

    #[test]
    fn merge_patch_follows_rfc7386() {
        let base = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "x": 1});
        let patch = json!({"a": {"b": null, "d": 3}, "l": [3], "y": {"z": 1}});
        assert_eq!(
            merge_patch(&base, &patch),
            json!({"a": {"c": 2, "d": 3}, "l": [3], "x": 1, "y": {"z": 1}})
        );
    }

    #[test]
    fn dropping_array_entries_is_detected() {
        let base = json!({"gateway": {"controlUi": {"allowedOrigins": ["https://a", "https://b"]}},
                          "k": 1});
        // Appending keeps every entry: fine.
        let add = json!({"gateway": {"controlUi": {"allowedOrigins": ["https://a", "https://b", "https://c"]}}});
        assert!(destructive_array_paths(&base, &add).is_empty());
        // Replacing with fewer, deleting, or replacing the parent object drops entries.
        let fewer = json!({"gateway": {"controlUi": {"allowedOrigins": ["https://a"]}}});
        assert_eq!(
            destructive_array_paths(&base, &fewer),
            vec!["gateway.controlUi.allowedOrigins"]
        );
        let del = json!({"gateway": {"controlUi": null}});
        assert_eq!(
            destructive_array_paths(&base, &del),
            vec!["gateway.controlUi.allowedOrigins"]
        );
        assert!(destructive_array_paths(&base, &json!({"k": 2})).is_empty());
    }

    #[test]
    fn changed_paths_are_leaves() {
        let a = json!({"gateway": {"port": 1, "auth": {"token": "x"}}, "r": [1]});
        let b = json!({"gateway": {"port": 2, "auth": {"token": "x"}}, "r": [1, 2], "n": true});
        assert_eq!(changed_paths(&a, &b), vec!["gateway.port", "n", "r"]);
        assert_eq!(
            changed_paths(&json!({}), &json!({"g": {"p": 1, "q": {"r": 2}}})),
            vec!["g.p", "g.q.r"]
        );
        assert!(changed_paths(&a, &a).is_empty());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("rg-cfgdoc-{}", uuid::Uuid::new_v4()));
        let path = dir.join("ringgate.json5");
        write_atomic(&path, "{a: 1}\n").unwrap();
        let s = read(&path);
        assert!(s.exists && s.valid());
        assert_eq!(s.parsed, json!({"a": 1}));
        assert_eq!(s.hash.as_deref(), Some(hash("{a: 1}\n").as_str()));
        write_atomic(&path, &render(&json!({"a": 2}))).unwrap();
        assert_eq!(read(&path).parsed, json!({"a": 2}));
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let missing = read(&dir.join("nope.json5"));
        assert!(!missing.exists && missing.valid());
        assert_eq!(
            missing.hash,
            Some(missing_hash()),
            "no file is a revision too"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
