//! The Control UI (the web dashboard) served from the gateway port, as the original serves it
//! (`control-ui.ts`, `control-ui-static.ts`): `index.html` for the root and every page path
//! (the SPA fallback), with the mount path, build id and terminal flag injected and absolute
//! asset URLs; fingerprinted assets with long-lived caching, precompressed `.br`/`.gz` when the
//! browser accepts them; the original's security headers; 404 for anything else.
//!
//! ringgate's repository does not contain the UI: it serves the build shipped in the OpenClaw
//! npm package — the directory named by `gateway.controlUi.root`, else the first one found
//! beside the binary (`make run` fetches it into `target/control-ui`) or in an installed
//! `openclaw` package. [`ControlUi::locate`] runs once at start (off the shards) and keeps
//! `index.html`, already prepared, and the list of files in memory; file contents are read by
//! [`super::files`], never on a shard thread.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use sha2::{Digest, Sha256};

use crate::config::ControlUiConfig;

/// Root files of the build, served under any mount (`CONTROL_UI_ROOT_PUBLIC_ASSETS`).
pub const ROOT_PUBLIC_ASSETS: &[&str] = &[
    "apple-touch-icon.png",
    "favicon-32.png",
    "favicon.ico",
    "favicon.svg",
    "manifest.webmanifest",
    "sw.js",
];

/// `CONTROL_UI_IMMUTABLE_CACHE_CONTROL`.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Files larger than this are not served (the build's largest is a few MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The original's content types (`CONTROL_UI_CONTENT_TYPES`); others are
/// `application/octet-stream`.
pub fn content_type(rel: &str) -> &'static str {
    match extension(rel) {
        "html" => "text/html; charset=utf-8",
        "js" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn extension(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.rsplit_once('.').map(|(_, e)| e).unwrap_or("")
}

/// A static-file extension: a missing file with one is a 404, never the SPA page.
fn is_static_extension(rel: &str) -> bool {
    let e = extension(rel);
    e != "html" && content_type(rel) != "application/octet-stream"
}

/// Extensions served precompressed when the build ships `.br`/`.gz` beside them.
fn is_compressible(rel: &str) -> bool {
    matches!(
        extension(rel),
        "css" | "html" | "js" | "json" | "svg" | "txt" | "wasm" | "webmanifest"
    )
}

/// Public build files whose URL carries `?v=<build id>` (cacheable for good then).
fn is_versioned_public(rel: &str) -> bool {
    if ROOT_PUBLIC_ASSETS.contains(&rel) {
        return rel != "sw.js";
    }
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let ext = extension(name);
    (dir == "fonts" && matches!(ext, "css" | "woff2"))
        || (dir == "themes" && ext == "css")
        || ((dir == "provider-icons"
            || dir == "cloud-provider-icons"
            || dir.starts_with("file-icons"))
            && ext == "svg")
        || ((dir == "app-art" || dir == "community-art") && ext == "webp")
}

/// One file of the build.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: PathBuf,
    pub len: u64,
    /// Modification time, whole seconds since the epoch (`Last-Modified`).
    pub mtime_s: u64,
    pub br: Option<(PathBuf, u64)>,
    pub gz: Option<(PathBuf, u64)>,
}

/// `index.html`, prepared once: rewritten, attributes injected, its inline scripts hashed
/// into the CSP.
#[derive(Debug)]
pub struct Index {
    pub body: Arc<Vec<u8>>,
    pub csp: String,
}

/// Where the UI is and what it holds; immutable once located (shared by every shard).
#[derive(Debug)]
pub struct ControlUi {
    pub enabled: bool,
    pub base_path: String,
    pub root: Option<PathBuf>,
    /// Why there is no UI (when `root` is `None`), for the log line and the 503 body.
    pub missing: Option<String>,
    /// The build id in the shipped `index.html` (`?v=` of public assets, `serverBuildId`).
    pub build_id: Option<String>,
    pub index: Option<Index>,
    files: HashMap<String, FileEntry>,
}

/// What a request resolved to.
#[derive(Debug)]
pub enum Resolved<'a> {
    /// The prepared `index.html` (root, page paths, approval and focus documents).
    Index,
    File {
        entry: &'a FileEntry,
        content_type: &'static str,
        immutable: bool,
    },
    NotFound,
    /// No UI to serve (its location, or how to get one).
    Unavailable(&'a str),
}

impl ControlUi {
    /// No UI (tests, or `enabled: false`).
    pub fn disabled() -> Arc<ControlUi> {
        Arc::new(ControlUi {
            enabled: false,
            base_path: String::new(),
            root: None,
            missing: Some("the Control UI is disabled (gateway.controlUi.enabled)".into()),
            build_id: None,
            index: None,
            files: HashMap::new(),
        })
    }

    /// Finds the UI (see the module docs), reads its file list and prepares `index.html`.
    /// Runs once at start, before the shards serve; logs which directory it serves or why
    /// none.
    pub fn locate(cfg: &ControlUiConfig) -> Arc<ControlUi> {
        if !cfg.enabled {
            return ControlUi::disabled();
        }
        let (root, missing) = match &cfg.root {
            Some(r) if r.join("index.html").is_file() => (Some(r.clone()), None),
            Some(r) => (
                None,
                Some(format!(
                    "Control UI assets not found at {}; update gateway.controlUi.root",
                    r.display()
                )),
            ),
            None => match candidates()
                .into_iter()
                .find(|c| c.join("index.html").is_file())
            {
                Some(r) => (Some(r), None),
                None => (
                    None,
                    Some(
                        "no Control UI found: install OpenClaw (`npm i -g openclaw`), run `make \
                         control-ui`, or set gateway.controlUi.root"
                            .to_owned(),
                    ),
                ),
            },
        };
        let ui = match root {
            Some(root) => ControlUi::load(cfg, root),
            None => ControlUi {
                enabled: true,
                base_path: cfg.base_path.clone(),
                root: None,
                missing,
                build_id: None,
                index: None,
                files: HashMap::new(),
            },
        };
        match (&ui.root, &ui.missing) {
            (Some(r), _) => tracing::info!(
                root = %r.display(),
                files = ui.files.len(),
                base_path = %ui.base_path,
                "serving the Control UI"
            ),
            (None, Some(why)) => tracing::warn!("{why}"),
            _ => {}
        }
        Arc::new(ui)
    }

    fn load(cfg: &ControlUiConfig, root: PathBuf) -> ControlUi {
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let mut files = HashMap::new();
        walk(&root, &root, &mut files, 0);
        let raw = std::fs::read_to_string(root.join("index.html")).unwrap_or_default();
        let build_id = html_attribute(&raw, "data-openclaw-control-ui-build-id");
        let index = prepare_index(&raw, &cfg.base_path, build_id.as_deref());
        ControlUi {
            enabled: true,
            base_path: cfg.base_path.clone(),
            root: Some(root),
            missing: None,
            build_id,
            index: Some(index),
            files,
        }
    }

    /// A UI over a fixed list of files under `root` (tests and fuzzing: no disk access).
    pub fn with_files(root: PathBuf, names: &[&str], build_id: Option<&str>) -> ControlUi {
        let files = names
            .iter()
            .map(|n| {
                let entry = FileEntry {
                    path: root.join(n),
                    len: 0,
                    mtime_s: 0,
                    br: None,
                    gz: None,
                };
                (n.to_string(), entry)
            })
            .collect();
        ControlUi {
            enabled: true,
            base_path: String::new(),
            root: Some(root),
            missing: None,
            build_id: build_id.map(str::to_owned),
            index: None,
            files,
        }
    }

    /// Is `path` (without the query) a Control UI route at all?
    pub fn mounted(&self, path: &str) -> bool {
        self.enabled
            && (self.base_path.is_empty()
                || path == self.base_path
                || path.starts_with(&format!("{}/", self.base_path)))
    }

    /// Resolves a GET/HEAD for `path` (decoded relative to the mount); `html` is whether the
    /// client accepts HTML (a page navigation gets the SPA document, a script request a 404).
    pub fn resolve(&self, path: &str, query: &str, html: bool) -> Resolved<'_> {
        let Some(root) = &self.root else {
            return Resolved::Unavailable(self.missing.as_deref().unwrap_or("no Control UI"));
        };
        let _ = root;
        let ui_path = match path.strip_prefix(self.base_path.as_str()) {
            Some(rest) if !self.base_path.is_empty() => rest,
            _ => path,
        };
        // Only origin-form paths name files (found by fuzzing: a target like `ɷ/` was
        // sliced inside its first character).
        if !ui_path.is_empty() && !ui_path.starts_with('/') {
            return Resolved::NotFound;
        }
        if ui_path == "/approve"
            || ui_path.starts_with("/approve/")
            || ui_path == "/focus"
            || ui_path.starts_with("/focus/")
        {
            return Resolved::Index;
        }
        let rel = if ui_path == "/share/card.png" {
            "social-card.png".to_owned()
        } else if ui_path == "/" || ui_path.is_empty() {
            String::new()
        } else if let Some(asset) = ui_path
            .strip_prefix("/__openclaw__/")
            .filter(|a| ROOT_PUBLIC_ASSETS.contains(a))
        {
            asset.to_owned()
        } else if let Some(i) = ui_path.find("/assets/") {
            ui_path[i + 1..].to_owned()
        } else {
            ui_path[1..].to_owned()
        };
        let requested = if rel.is_empty() || rel.ends_with('/') {
            format!("{rel}index.html")
        } else {
            rel
        };
        let Some(rel) = percent_decode(&requested).filter(|r| safe_relative(r)) else {
            return Resolved::NotFound;
        };
        // The shipped `.br`/`.gz` files are representations, never addressed directly.
        if rel.ends_with(".br") || rel.ends_with(".gz") {
            return Resolved::NotFound;
        }
        if rel == "index.html" || rel.ends_with("/index.html") {
            return if rel == "index.html" || html {
                Resolved::Index
            } else {
                Resolved::NotFound
            };
        }
        if let Some(entry) = self.files.get(&rel) {
            let immutable = rel.starts_with("assets/")
                || (self.build_id.is_some()
                    && is_versioned_public(&rel)
                    && query_param(query, "v").as_deref() == self.build_id.as_deref());
            return Resolved::File {
                entry,
                content_type: content_type(&rel),
                immutable,
            };
        }
        if is_static_extension(&rel) || !html {
            Resolved::NotFound
        } else {
            Resolved::Index
        }
    }
}

/// The representation to send for a file given `Accept-Encoding`: the precompressed `.br`
/// or `.gz` when the build ships one and the client accepts it, else the file itself.
pub fn representation<'a>(
    entry: &'a FileEntry,
    rel_type: &str,
    accept_encoding: Option<&str>,
) -> (&'a Path, u64, Option<&'static str>) {
    let accepts = |enc: &str| {
        accept_encoding.is_some_and(|h| {
            h.split(',').any(|part| {
                let mut it = part.split(';');
                let name = it.next().unwrap_or("").trim();
                let q_zero = it.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                name.eq_ignore_ascii_case(enc) && !q_zero
            })
        })
    };
    if rel_type != "application/octet-stream" {
        if let Some((p, n)) = &entry.br {
            if accepts("br") {
                return (p, *n, Some("br"));
            }
        }
        if let Some((p, n)) = &entry.gz {
            if accepts("gzip") {
                return (p, *n, Some("gzip"));
            }
        }
    }
    (&entry.path, entry.len, None)
}

/// Where an installed Control UI may be, in order: beside the binary (`make run` puts one in
/// `target/control-ui`, `make test` installs the OpenClaw client in `target/openclaw-client`),
/// then the package of the `openclaw` on `PATH`, then npm's global prefixes.
fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().and_then(Path::parent).map(Path::to_path_buf))
    {
        out.push(dir.join("control-ui"));
        out.push(dir.join("openclaw-client/node_modules/openclaw/dist/control-ui"));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let exe = dir.join("openclaw");
            if let Ok(real) = std::fs::canonicalize(&exe) {
                // npm links `bin/openclaw` to `<package>/openclaw.mjs`.
                if let Some(pkg) = real.parent() {
                    out.push(pkg.join("dist/control-ui"));
                }
            }
        }
    }
    for prefix in ["/usr/local/lib/node_modules", "/usr/lib/node_modules"] {
        out.push(Path::new(prefix).join("openclaw/dist/control-ui"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        out.push(Path::new(&home).join(".npm-global/lib/node_modules/openclaw/dist/control-ui"));
    }
    out
}

/// Collects the build's files (bounded depth and count; symlinks are not followed out).
fn walk(root: &Path, dir: &Path, out: &mut HashMap<String, FileEntry>, depth: usize) {
    const MAX_FILES: usize = 20_000;
    if depth > 8 || out.len() >= MAX_FILES {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let path = e.path();
        if meta.is_dir() {
            walk(root, &path, out, depth + 1);
            continue;
        }
        if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
            continue;
        }
        let Some(rel) = path
            .strip_prefix(root)
            .ok()
            .and_then(Path::to_str)
            .map(str::to_owned)
        else {
            continue;
        };
        if rel.ends_with(".br") || rel.ends_with(".gz") {
            continue;
        }
        let side = |suffix: &str| {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            let len = std::fs::metadata(&p).ok().filter(|m| m.is_file())?.len();
            (is_compressible(&rel) && len <= MAX_FILE_BYTES).then_some((p, len))
        };
        let mtime_s = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        out.insert(
            rel.clone(),
            FileEntry {
                br: side(".br"),
                gz: side(".gz"),
                path,
                len: meta.len(),
                mtime_s,
            },
        );
    }
}

/// The value of `name="…"` on the `<html>` tag.
fn html_attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find("<html")?;
    let tag = &html[start..start + html[start..].find('>')?];
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[at..].find('"')?;
    Some(tag[at..at + end].to_owned())
}

fn escape_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `serveResolvedIndexHtml`: absolute asset URLs under the mount (public assets with
/// `?v=<build>`), the mount path, terminal flag and build id on `<html>`, and a CSP that
/// allows exactly the page's inline scripts.
pub fn prepare_index(raw: &str, base_path: &str, build_id: Option<&str>) -> Index {
    let mut html = raw
        .replace("src=\"./assets/", &format!("src=\"{base_path}/assets/"))
        .replace("href=\"./assets/", &format!("href=\"{base_path}/assets/"));
    for asset in ROOT_PUBLIC_ASSETS {
        let version = match build_id {
            Some(b) if is_versioned_public(asset) => format!("?v={}", percent_encode(b)),
            _ => String::new(),
        };
        let target = format!("href=\"{base_path}/{asset}{version}\"");
        for from in [
            format!("href=\"./{asset}\""),
            format!("href=\"/{asset}\""),
            format!("href=\"{base_path}/{asset}\""),
        ] {
            if from != target {
                html = html.replace(&from, &target);
            }
        }
    }
    if let Some(start) = html.find("<html") {
        if let Some(len) = html[start..].find('>') {
            let tag = &html[start..start + len];
            let mut rest = tag.trim_start_matches("<html").to_owned();
            // Drop the shipped build-id attribute; ours goes first, as the original's.
            if let Some(i) = rest.find(" data-openclaw-control-ui-build-id=\"") {
                if let Some(j) = rest[i + 36..].find('"') {
                    rest.replace_range(i..i + 36 + j + 1, "");
                }
            }
            let build = build_id
                .map(|b| format!(" data-openclaw-control-ui-build-id=\"{}\"", escape_attr(b)))
                .unwrap_or_default();
            let new_tag = format!(
                "<html data-openclaw-control-ui-base-path=\"{}\" data-openclaw-terminal-enabled=\"false\"{build}{rest}",
                escape_attr(base_path)
            );
            html.replace_range(start..start + len, &new_tag);
        }
    }
    let csp = csp(&inline_script_hashes(&html));
    Index {
        body: Arc::new(html.into_bytes()),
        csp,
    }
}

/// SHA-256 hashes (`sha256-…`) of the inline `<script>` blocks (those without `src`).
fn inline_script_hashes(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = lower[at..].find("<script") {
        let open_start = at + i;
        let Some(open_len) = lower[open_start..].find('>') else {
            break;
        };
        let content_start = open_start + open_len + 1;
        let Some(close) = lower[content_start..].find("</script>") else {
            break;
        };
        let open_tag = &lower[open_start..content_start];
        let content = &html[content_start..content_start + close];
        let has_src = open_tag
            .split(|c: char| c.is_whitespace())
            .any(|a| a == "src" || a.starts_with("src="));
        if !has_src && !content.is_empty() {
            out.push(format!(
                "sha256-{}",
                STANDARD.encode(Sha256::digest(content.as_bytes()))
            ));
        }
        at = content_start + close + 9;
    }
    out
}

/// `buildControlUiCspHeader` with the page's inline-script hashes.
pub fn csp(hashes: &[String]) -> String {
    let mut script = vec!["'self'".to_owned()];
    script.extend(hashes.iter().map(|h| format!("'{h}'")));
    [
        "default-src 'self'".to_owned(),
        "base-uri 'none'".to_owned(),
        "object-src 'none'".to_owned(),
        "frame-ancestors 'none'".to_owned(),
        "frame-src 'self' http: https:".to_owned(),
        format!("script-src {}", script.join(" ")),
        "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com".to_owned(),
        "img-src 'self' data: blob: https:".to_owned(),
        "media-src 'self' data: blob:".to_owned(),
        "font-src 'self' https://fonts.gstatic.com".to_owned(),
        "worker-src 'self'".to_owned(),
        "connect-src 'self' ws: wss: data: https://api.openai.com https://tweakcn.com".to_owned(),
    ]
    .join("; ")
}

/// The security headers of every Control UI response (`applyControlUiSecurityHeaders`).
pub fn security_headers(csp: String) -> Vec<(&'static str, String)> {
    vec![
        ("X-Frame-Options", "DENY".into()),
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff".into()),
        ("Referrer-Policy", "no-referrer".into()),
        (
            "Permissions-Policy",
            "camera=(self), microphone=*, geolocation=*, clipboard-write=*".into(),
        ),
    ]
}

/// `%XX` decoding of a path; `None` when malformed or not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes like JavaScript's `encodeURIComponent` (what the original uses for ids in
/// URLs it hands out).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A relative path that stays inside the root: no `..`, no absolute path, no NUL, no
/// backslash.
pub fn safe_relative(rel: &str) -> bool {
    !rel.is_empty()
        && !rel.starts_with('/')
        && !rel.contains(['\0', '\\'])
        && rel.split('/').all(|seg| seg != ".." && seg != ".")
}

/// A query parameter's (decoded) value.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(&v.replace('+', " ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = r#"<!doctype html>
<html data-openclaw-control-ui-build-id="b1" lang="en">
<head><link rel="icon" href="./favicon.svg" /><link rel="manifest" href="./manifest.webmanifest" />
<script>var x = 1;</script>
<script type="module" crossorigin src="./assets/index-abc.js"></script>
<link rel="stylesheet" href="./assets/index-abc.css"></head><body></body></html>"#;

    #[test]
    fn index_is_prepared_like_the_original() {
        let i = prepare_index(RAW, "/ui", Some("b1"));
        let html = String::from_utf8(i.body.to_vec()).unwrap();
        assert!(html.contains(
            r#"<html data-openclaw-control-ui-base-path="/ui" data-openclaw-terminal-enabled="false" data-openclaw-control-ui-build-id="b1" lang="en">"#
        ), "{html}");
        assert!(html.contains(r#"src="/ui/assets/index-abc.js""#));
        assert!(html.contains(r#"href="/ui/assets/index-abc.css""#));
        assert!(html.contains(r#"href="/ui/favicon.svg?v=b1""#));
        assert!(html.contains(r#"href="/ui/manifest.webmanifest?v=b1""#));
        // Exactly the one inline script is allowed.
        let hash = STANDARD.encode(Sha256::digest(b"var x = 1;"));
        assert!(
            i.csp
                .contains(&format!("script-src 'self' 'sha256-{hash}';")),
            "{}",
            i.csp
        );
    }

    #[test]
    fn paths_never_leave_the_root() {
        for bad in [
            "../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "x\0y",
            "./a",
        ] {
            assert!(!safe_relative(bad), "{bad:?}");
        }
        assert!(safe_relative("assets/index.js"));
        assert_eq!(percent_decode("%2e%2e/x").as_deref(), Some("../x"));
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%e2%28").is_none(), "not UTF-8");
    }

    fn ui_with(files: &[&str]) -> ControlUi {
        let mut map = HashMap::new();
        for f in files {
            map.insert(
                f.to_string(),
                FileEntry {
                    path: PathBuf::from(format!("/r/{f}")),
                    len: 1,
                    mtime_s: 0,
                    br: Some((PathBuf::from(format!("/r/{f}.br")), 1)),
                    gz: None,
                },
            );
        }
        ControlUi {
            enabled: true,
            base_path: String::new(),
            root: Some(PathBuf::from("/r")),
            missing: None,
            build_id: Some("b1".into()),
            index: None,
            files: map,
        }
    }

    #[test]
    fn routes_resolve_as_the_original() {
        let ui = ui_with(&["assets/app-x.js", "favicon.svg", "sw.js"]);
        assert!(matches!(ui.resolve("/", "", true), Resolved::Index));
        assert!(matches!(
            ui.resolve("/settings/devices", "", true),
            Resolved::Index
        ));
        assert!(matches!(
            ui.resolve("/chat/main", "", false),
            Resolved::NotFound
        ));
        assert!(matches!(
            ui.resolve("/approve/abc", "", false),
            Resolved::Index
        ));
        // Assets resolve from any depth (deep links load their bundle).
        assert!(matches!(
            ui.resolve("/settings/assets/app-x.js", "", false),
            Resolved::File {
                immutable: true,
                ..
            }
        ));
        assert!(matches!(
            ui.resolve("/assets/missing.js", "", true),
            Resolved::NotFound
        ));
        assert!(matches!(
            ui.resolve("/favicon.svg", "v=b1", false),
            Resolved::File {
                immutable: true,
                ..
            }
        ));
        assert!(matches!(
            ui.resolve("/favicon.svg", "", false),
            Resolved::File {
                immutable: false,
                ..
            }
        ));
        assert!(matches!(
            ui.resolve("/assets/app-x.js.br", "", false),
            Resolved::NotFound
        ));
        assert!(matches!(
            ui.resolve("/%2e%2e/%2e%2e/etc/passwd", "", true),
            Resolved::NotFound
        ));
        assert!(matches!(
            ui.resolve("/assets/%2e%2e/%2e%2e/x", "", true),
            Resolved::NotFound
        ));
        // Targets that are not paths (fuzzing found a panic on a multi-byte first char).
        for odd in ["ɷ/", "*", "x", "ɷ"] {
            assert!(
                matches!(ui.resolve(odd, "", true), Resolved::NotFound),
                "{odd}"
            );
        }
    }

    #[test]
    fn precompressed_representations_follow_accept_encoding() {
        let ui = ui_with(&["assets/app-x.js"]);
        let Resolved::File {
            entry,
            content_type,
            ..
        } = ui.resolve("/assets/app-x.js", "", false)
        else {
            panic!()
        };
        assert_eq!(
            representation(entry, content_type, Some("gzip, deflate, br")).2,
            Some("br")
        );
        assert_eq!(
            representation(entry, content_type, Some("gzip")).2,
            None,
            "no .gz shipped"
        );
        assert_eq!(representation(entry, content_type, Some("br;q=0")).2, None);
        assert_eq!(representation(entry, content_type, None).2, None);
    }
}
