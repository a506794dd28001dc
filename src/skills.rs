//! Skills: `skills.status` and `skills.bins`.
//!
//! A skill is a directory holding a `SKILL.md` whose leading front matter (between `---` lines)
//! names it and, under `metadata`, carries an `openclaw` manifest (often JSON/JSON5 written
//! inside YAML): `emoji`, `homepage`, `requires: {bins, anyBins, env, config}`, `os`, `always`,
//! `primaryEnv`, `skillKey`, `install: [...]`. The gateway answers `skills.status` with every
//! skill found in the configured skill directories plus its requirement checks, in the original's
//! shape (`src/skills/discovery/status.ts`, `src/shared/requirements.ts`), so `openclaw skills
//! list` renders it unchanged; `skills.bins` lists every binary the skills mention.
//!
//! Rules kept from the original:
//! * Directories are scanned in precedence tiers (extra < bundled < workshop < managed < personal
//!   < workspace); a later skill with the same `name` replaces an earlier one. The result is
//!   sorted by name (`localeCompare(.., "en")`, approximated: case-insensitive, lowercase first).
//! * `name` falls back to the directory name; a skill without `description` or with an
//!   unterminated front matter block is skipped with a warning.
//! * Requirements: every `bins` entry must be on PATH; `anyBins` needs one of its entries;
//!   `env` entries must be non-blank (process env, `skills.entries.<key>.env`, or `apiKey` for
//!   the `primaryEnv`); `config` paths must be truthy in the config; `os` must contain the host
//!   platform (process.platform names: `linux`, `darwin`, `win32`; `macos` means `darwin`).
//!   `always` waives everything but `os`. `eligible` also needs the skill not disabled and not
//!   blocked by `skills.allowBundled`.
//!
//! Left out: remote node eligibility, ClawHub/skill-card facts, skill library selections,
//! symlink containment policy and nested-YAML `metadata` (real files use JSON-in-YAML).
//!
//! **Blocking IO**: everything here reads directories and files synchronously. Call it on a
//! storage/worker thread, never on a shard thread.

use std::{
    cell::RefCell,
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    ffi::OsStr,
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::Value;

/// Source labels, in the original's vocabulary.
pub mod source {
    /// Skills shipped with the gateway package.
    pub const BUNDLED: &str = "openclaw-bundled";
    /// Gateway-maintenance skills shipped with the package (counted as bundled).
    pub const CUSTODIAN: &str = "openclaw-custodian";
    /// Extra directories from configuration (`skills.load.extraDirs`, plugin skills).
    pub const EXTRA: &str = "openclaw-extra";
    pub const WORKSHOP: &str = "openclaw-workshop";
    /// `<state dir>/skills`.
    pub const MANAGED: &str = "openclaw-managed";
    pub const PERSONAL: &str = "agents-skills-personal";
    pub const PROJECT: &str = "agents-skills-project";
    /// `<workspace>/skills`.
    pub const WORKSPACE: &str = "openclaw-workspace";
}

/// Largest `SKILL.md` read (the original's `maxSkillFileBytes` default).
pub const MAX_SKILL_FILE_BYTES: u64 = 256_000;
/// Directories looked at per root, and skills kept per root (the original's defaults).
const MAX_CANDIDATES_PER_ROOT: usize = 300;
const MAX_SKILLS_PER_ROOT: usize = 200;
/// How deep grouped skills (`root/group/skill`) are searched; extra dirs search less deep.
const MAX_GROUPED_DEPTH: usize = 6;
const MAX_EXTRA_GROUPED_DEPTH: usize = 2;
/// Config paths that count as truthy when unset (the original's `DEFAULT_CONFIG_VALUES`).
const CONFIG_DEFAULTS: &[(&str, bool)] =
    &[("browser.enabled", true), ("browser.evaluateEnabled", true)];

// ---------------------------------------------------------------------------------------------
// Settings and host probe
// ---------------------------------------------------------------------------------------------

/// One directory to scan and the source label its skills report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillRoot {
    pub dir: PathBuf,
    pub source: String,
}

impl SkillRoot {
    pub fn new(dir: impl Into<PathBuf>, source: &str) -> Self {
        Self {
            dir: dir.into(),
            source: source.to_string(),
        }
    }
}

/// What the gateway knows about where skills live and how they are configured.
#[derive(Debug, Clone, Default)]
pub struct SkillsSettings {
    /// Reported as `workspaceDir`.
    pub workspace_dir: PathBuf,
    /// Reported as `managedSkillsDir` and always scanned as [`source::MANAGED`].
    pub managed_dir: PathBuf,
    /// Further directories (e.g. `ringgate.skills.dirs` as [`source::EXTRA`]). Their order only
    /// matters within one tier: later wins.
    pub roots: Vec<SkillRoot>,
    /// Skill keys switched off by configuration (`disabled: true` in the report).
    pub disabled: BTreeSet<String>,
    /// The agent's skill allowlist, if it has one: skills outside it are `blockedByAgentFilter`.
    pub agent_filter: Option<Vec<String>>,
    /// An OpenClaw-shaped config document (may be `Null`): `requires.config` paths are checked
    /// against it, and `skills.entries.<key>.{enabled,env,apiKey}`, `skills.allowBundled` and
    /// `skills.install.{preferBrew,nodeManager}` are honoured like the original.
    pub config: Value,
}

impl SkillsSettings {
    /// Settings with the managed dir at `<state_dir>/skills` and nothing else configured.
    pub fn new(state_dir: &Path, workspace_dir: impl Into<PathBuf>) -> Self {
        Self {
            workspace_dir: workspace_dir.into(),
            managed_dir: state_dir.join("skills"),
            ..Self::default()
        }
    }

    /// The directories to scan, lowest precedence first (stable within a tier).
    pub fn scan_roots(&self) -> Vec<SkillRoot> {
        let mut roots = self.roots.clone();
        if !roots.iter().any(|r| r.dir == self.managed_dir) {
            roots.push(SkillRoot::new(self.managed_dir.clone(), source::MANAGED));
        }
        roots.sort_by_key(|r| source_tier(&r.source));
        roots
    }

    /// `skills.entries.<key>` when it is an object.
    fn skill_config(&self, key: &str) -> Option<&Value> {
        self.config
            .pointer("/skills/entries")
            .and_then(|entries| entries.get(key))
            .filter(|v| v.is_object())
    }
}

/// Precedence tier of a source label; unknown labels rank with extra dirs (lowest).
fn source_tier(label: &str) -> u8 {
    match label {
        source::BUNDLED | source::CUSTODIAN => 1,
        source::WORKSHOP => 2,
        source::MANAGED => 3,
        source::PERSONAL => 4,
        source::WORKSPACE | source::PROJECT => 5,
        _ => 0,
    }
}

/// Reads one environment variable.
pub type EnvLookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// The host facts requirement checks read: environment, PATH and platform. Passed in so tests
/// don't depend on the machine; [`HostProbe::from_process`] reads the real ones.
pub struct HostProbe<'a> {
    env: EnvLookup<'a>,
    path_dirs: Vec<PathBuf>,
    platform: String,
    /// Binary lookups memoised for one report (many skills share `curl`, `node`, `brew`).
    bins: RefCell<HashMap<String, bool>>,
}

impl<'a> HostProbe<'a> {
    /// `path` is a PATH-style list; `platform` a process.platform name (`linux`, `darwin`...).
    pub fn new(env: impl Fn(&str) -> Option<String> + 'a, path: &OsStr, platform: &str) -> Self {
        Self {
            env: Box::new(env),
            path_dirs: std::env::split_paths(path)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            platform: platform.to_string(),
            bins: RefCell::new(HashMap::new()),
        }
    }

    /// The real process environment, PATH and platform.
    pub fn from_process() -> HostProbe<'static> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        HostProbe::new(|name| std::env::var(name).ok(), &path, current_platform())
    }

    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// True when an executable file named `bin` exists in some PATH directory.
    pub fn has_bin(&self, bin: &str) -> bool {
        if let Some(&known) = self.bins.borrow().get(bin) {
            return known;
        }
        let found = !bin.is_empty()
            && self
                .path_dirs
                .iter()
                .any(|dir| is_executable(&dir.join(bin)));
        self.bins.borrow_mut().insert(bin.to_string(), found);
        found
    }

    /// True when the variable is set to something other than whitespace.
    pub fn env_is_set(&self, name: &str) -> bool {
        (self.env)(name).is_some_and(|v| !v.trim().is_empty())
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// This process's platform in Node's `process.platform` vocabulary, which SKILL.md `os` uses.
pub fn current_platform() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    }
}

/// `macos` is accepted as an alias of `darwin` in `os` lists.
fn normalize_platform(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    if lower == "macos" {
        "darwin".to_string()
    } else {
        lower
    }
}

// ---------------------------------------------------------------------------------------------
// Front matter
// ---------------------------------------------------------------------------------------------

/// Top-level front matter fields as strings. Scalars are unquoted; structured values (a
/// `metadata` JSON block) keep their source text for [`parse_metadata`].
pub type FrontMatter = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontMatterError {
    #[error("invalid frontmatter: UNTERMINATED_FRONTMATTER: missing closing --- delimiter")]
    Unterminated,
}

/// Parses the leading front matter of a SKILL.md. No front matter gives an empty map (the
/// skill is then rejected for lacking a description); an opening `---` without a closing one is
/// an error, as in the original.
pub fn parse_front_matter(content: &str) -> Result<FrontMatter, FrontMatterError> {
    let text = normalize_newlines(content);
    let Some(start) = opening_delimiter_len(&text) else {
        return Ok(FrontMatter::new());
    };
    let block = closing_block(&text[start..]).ok_or(FrontMatterError::Unterminated)?;
    Ok(parse_block(block))
}

fn normalize_newlines(content: &str) -> String {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    content.replace("\r\n", "\n").replace('\r', "\n")
}

/// Length of a leading `---` line (with its newline), if the text opens with one.
fn opening_delimiter_len(text: &str) -> Option<usize> {
    let (first, _) = text.split_once('\n')?;
    is_delimiter(first).then_some(first.len() + 1)
}

fn is_delimiter(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.chars().all(|c| c == ' ' || c == '\t'))
}

/// The block before the first closing `---` line, without the newline that precedes it.
fn closing_block(tail: &str) -> Option<&str> {
    let mut offset: usize = 0;
    for line in tail.split('\n') {
        if is_delimiter(line) {
            return Some(&tail[..offset.saturating_sub(1)]);
        }
        offset += line.len() + 1;
    }
    None
}

/// A YAML subset: `key: value` lines at column 0, values quoted, plain, block scalars (`|`,
/// `>`), flow JSON (`{...}`/`[...]`) possibly continued on indented lines, or an indented
/// block (kept as text). Comment lines and unknown shapes are skipped.
fn parse_block(block: &str) -> FrontMatter {
    let lines: Vec<&str> = block.split('\n').collect();
    let mut out = FrontMatter::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let Some((key, rest)) = split_key(line) else {
            continue;
        };
        let start = i;
        while i < lines.len() && (lines[i].trim().is_empty() || lines[i].starts_with([' ', '\t'])) {
            i += 1;
        }
        let value = field_value(rest.trim(), &lines[start..i]);
        if !value.is_empty() {
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// `key: rest` when the line starts with a `[A-Za-z0-9_-]+` key followed by a colon.
fn split_key(line: &str) -> Option<(&str, &str)> {
    let (key, rest) = line.split_once(':')?;
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    valid.then_some((key, rest))
}

/// The value of one field from its inline text and its indented continuation lines.
fn field_value(inline: &str, continuation: &[&str]) -> String {
    if let Some(style) = block_scalar_style(inline) {
        return block_scalar(style, continuation);
    }
    if inline.is_empty() {
        let text = continuation.join("\n").trim().to_string();
        return if text.starts_with(['{', '[']) || looks_like_yaml_block(&text) {
            text
        } else {
            fold(&text)
        };
    }
    if inline.starts_with(['{', '[']) {
        let mut text = inline.to_string();
        for line in continuation {
            text.push('\n');
            text.push_str(line);
        }
        return text.trim().to_string();
    }
    let joined = std::iter::once(inline)
        .chain(continuation.iter().map(|l| l.trim()))
        .collect::<Vec<_>>()
        .join(" ");
    let joined = joined.trim();
    if joined.starts_with('"') {
        double_quoted(joined)
    } else if joined.starts_with('\'') {
        single_quoted(joined)
    } else {
        strip_comment(joined).trim().to_string()
    }
}

/// `|` or `>` with optional chomping/indent indicators; returns whether it is literal.
fn block_scalar_style(inline: &str) -> Option<bool> {
    let mut chars = inline.chars();
    let literal = match chars.next()? {
        '|' => true,
        '>' => false,
        _ => return None,
    };
    chars
        .all(|c| c == '+' || c == '-' || c.is_ascii_digit())
        .then_some(literal)
}

/// Literal blocks keep line breaks; folded blocks join lines with spaces (blank lines break).
fn block_scalar(literal: bool, lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let body: Vec<&str> = lines
        .iter()
        .map(|l| l.get(indent..).unwrap_or("").trim_end())
        .collect();
    if literal {
        body.join("\n").trim().to_string()
    } else {
        fold(&body.join("\n"))
    }
}

/// YAML line folding: single breaks become spaces, blank lines become newlines.
fn fold(text: &str) -> String {
    text.split("\n\n")
        .map(|para| {
            para.split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An indented nested mapping or sequence (`openclaw:` / `- x`), kept verbatim.
fn looks_like_yaml_block(text: &str) -> bool {
    let first = text.lines().next().unwrap_or("").trim();
    first.starts_with("- ")
        || split_key(first).is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with(' '))
}

/// A double-quoted scalar: JSON escapes are decoded; anything JSON rejects keeps its text.
fn double_quoted(text: &str) -> String {
    let end = closing_double_quote(text).unwrap_or(text.len());
    let quoted = &text[..end];
    serde_json::from_str::<String>(quoted)
        .unwrap_or_else(|_| {
            quoted
                .trim_start_matches('"')
                .trim_end_matches('"')
                .to_string()
        })
        .trim()
        .to_string()
}

/// Index just past the closing quote of a double-quoted scalar starting at 0.
fn closing_double_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// A single-quoted scalar: `''` is a literal quote.
fn single_quoted(text: &str) -> String {
    let inner = &text[1..];
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            break;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// A plain scalar ends at ` #` (a YAML comment).
fn strip_comment(text: &str) -> &str {
    text.find(" #").map_or(text, |i| &text[..i])
}

/// `true/1/yes/on` and `false/0/no/off` (any case); anything else is the default.
fn parse_bool(value: Option<&String>, default: bool) -> bool {
    match value.map(|v| v.trim().to_lowercase()).as_deref() {
        Some("true" | "1" | "yes" | "on") => true,
        Some("false" | "0" | "no" | "off") => false,
        _ => default,
    }
}

// ---------------------------------------------------------------------------------------------
// Manifest (`metadata.openclaw`)
// ---------------------------------------------------------------------------------------------

/// The `openclaw` manifest of a skill (legacy key `clawdbot` accepted).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkillMetadata {
    pub always: Option<bool>,
    pub emoji: Option<String>,
    pub homepage: Option<String>,
    pub skill_key: Option<String>,
    pub primary_env: Option<String>,
    pub os: Vec<String>,
    pub requires: Requires,
    pub install: Vec<InstallSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requires {
    pub bins: Vec<String>,
    pub any_bins: Vec<String>,
    pub env: Vec<String>,
    pub config: Vec<String>,
}

/// One validated install recipe; recipes missing their kind's required field are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallSpec {
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
    pub bins: Vec<String>,
    pub os: Vec<String>,
    pub formula: Option<String>,
    pub package: Option<String>,
    pub module: Option<String>,
    pub url: Option<String>,
}

/// Reads the manifest from the `metadata` field: JSON first, JSON5 (trailing commas, as real
/// SKILL.md files have) as the fallback. `None` when absent or unparsable.
pub fn parse_metadata(front: &FrontMatter) -> Option<SkillMetadata> {
    let raw = front.get("metadata")?;
    let doc: Value = serde_json::from_str(raw)
        .or_else(|_| json5::from_str(raw))
        .ok()?;
    let manifest = ["openclaw", "clawdbot"]
        .iter()
        .find_map(|k| doc.get(*k).filter(|v| v.is_object()))?;
    Some(SkillMetadata {
        always: manifest.get("always").and_then(Value::as_bool),
        emoji: str_field(manifest, "emoji"),
        homepage: str_field(manifest, "homepage"),
        skill_key: str_field(manifest, "skillKey").filter(|k| !k.trim().is_empty()),
        primary_env: str_field(manifest, "primaryEnv"),
        os: string_list(manifest.get("os")),
        requires: manifest
            .get("requires")
            .filter(|v| v.is_object())
            .map(parse_requires)
            .unwrap_or_default(),
        install: manifest
            .get("install")
            .and_then(Value::as_array)
            .map(|specs| specs.iter().filter_map(parse_install_spec).collect())
            .unwrap_or_default(),
    })
}

fn str_field(obj: &Value, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Arrays of scalars (trimmed, blanks dropped) or a comma-separated string.
fn string_list(value: Option<&Value>) -> Vec<String> {
    let items: Vec<String> = match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_requires(raw: &Value) -> Requires {
    Requires {
        bins: string_list(raw.get("bins")),
        any_bins: string_list(raw.get("anyBins")),
        env: string_list(raw.get("env")),
        config: string_list(raw.get("config")),
    }
}

/// Mirrors the original's `parseInstallSpec`: known kinds only, package names checked so a
/// manifest can't smuggle options or paths into an installer command line.
fn parse_install_spec(raw: &Value) -> Option<InstallSpec> {
    let kind_raw = raw
        .get("kind")
        .or_else(|| raw.get("type"))
        .and_then(Value::as_str)?;
    let kind = kind_raw.trim().to_lowercase();
    if !["brew", "node", "go", "uv", "download"].contains(&kind.as_str()) {
        return None;
    }
    let text = |key: &str| {
        raw.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let formula = text("formula")
        .or_else(|| text("cask"))
        .filter(|f| safe_spec(f, is_brew_char));
    let package = match kind.as_str() {
        "node" => {
            text("package").filter(|p| !p.starts_with('-') && !p.chars().any(char::is_whitespace))
        }
        "uv" => text("package").filter(|p| safe_spec(p, is_uv_char)),
        _ => None,
    };
    let url = text("url").filter(|u| {
        (u.starts_with("https://") || u.starts_with("http://"))
            && !u.chars().any(char::is_whitespace)
    });
    if kind == "download" && raw.get("sha256").is_some() {
        let sha = raw.get("sha256").and_then(Value::as_str)?.trim();
        if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
    }
    let spec = InstallSpec {
        id: str_field(raw, "id"),
        label: str_field(raw, "label").filter(|l| !l.is_empty()),
        bins: string_list(raw.get("bins")),
        os: string_list(raw.get("os")),
        formula: formula.map(str::to_string),
        package: package.map(str::to_string),
        module: text("module")
            .filter(|m| safe_spec(m, is_go_char))
            .map(str::to_string),
        url: url.map(str::to_string),
        kind,
    };
    let complete = match spec.kind.as_str() {
        "brew" => spec.formula.is_some(),
        "node" | "uv" => spec.package.is_some(),
        "go" => spec.module.is_some(),
        _ => spec.url.is_some(),
    };
    complete.then_some(spec)
}

/// Starts alphanumeric, no `..`, `\` or `://`, every char allowed by `ok`.
fn safe_spec(value: &str, ok: fn(char) -> bool) -> bool {
    value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !value.contains("..")
        && !value.contains('\\')
        && !value.contains("://")
        && value.chars().all(ok)
}

fn is_brew_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "@+._/-".contains(c)
}

fn is_go_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._~+-/@".contains(c)
}

fn is_uv_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-[]=<>!~+,".contains(c)
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// One loaded skill.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillEntry {
    pub name: String,
    pub description: String,
    pub source: String,
    pub file_path: PathBuf,
    pub base_dir: PathBuf,
    pub front_matter: FrontMatter,
    pub metadata: Option<SkillMetadata>,
    pub user_invocable: bool,
    pub disable_model_invocation: bool,
}

impl SkillEntry {
    /// The key config uses for this skill: `metadata.openclaw.skillKey`, else the name.
    pub fn skill_key(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.skill_key.as_deref())
            .unwrap_or(&self.name)
    }

    fn is_bundled(&self) -> bool {
        self.source == source::BUNDLED || self.source == source::CUSTODIAN
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SkillLoadError {
    #[error("failed to read skill file: {0}")]
    Read(#[from] std::io::Error),
    #[error("skill file exceeds 256000 bytes")]
    TooLarge,
    #[error(transparent)]
    FrontMatter(#[from] FrontMatterError),
    #[error("name is required")]
    MissingName,
    #[error("description is required")]
    MissingDescription,
}

/// Loads `<dir>/SKILL.md`. Paths are made absolute (not canonicalised) like `path.resolve`.
pub fn load_skill_dir(dir: &Path, source: &str) -> Result<SkillEntry, SkillLoadError> {
    let base_dir = std::path::absolute(dir)?;
    let file_path = base_dir.join("SKILL.md");
    if std::fs::metadata(&file_path)?.len() > MAX_SKILL_FILE_BYTES {
        return Err(SkillLoadError::TooLarge);
    }
    let raw = String::from_utf8_lossy(&std::fs::read(&file_path)?).into_owned();
    let front_matter = parse_front_matter(&raw)?;
    let fallback = base_dir
        .file_name()
        .map(|n| n.to_string_lossy().trim().to_string())
        .unwrap_or_default();
    let name = front_matter
        .get("name")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map_or(fallback, str::to_string);
    if name.is_empty() {
        return Err(SkillLoadError::MissingName);
    }
    let description = front_matter
        .get("description")
        .map(|d| d.trim().to_string())
        .unwrap_or_default();
    if description.is_empty() {
        return Err(SkillLoadError::MissingDescription);
    }
    Ok(SkillEntry {
        name,
        description,
        source: source.to_string(),
        metadata: parse_metadata(&front_matter),
        user_invocable: parse_bool(front_matter.get("user-invocable"), true),
        disable_model_invocation: parse_bool(front_matter.get("disable-model-invocation"), false),
        file_path,
        base_dir,
        front_matter,
    })
}

/// Skill directories under a root: the root itself if it holds a SKILL.md, else its child
/// directories (sorted, hidden and `node_modules` skipped), descending into groups without a
/// SKILL.md up to a depth limit.
pub fn discover_skill_dirs(root: &Path, source_label: &str) -> Vec<PathBuf> {
    if !root.is_dir() {
        return Vec::new();
    }
    if has_skill_file(root) {
        return vec![root.to_path_buf()];
    }
    let max_depth = if source_label == source::EXTRA {
        MAX_EXTRA_GROUPED_DEPTH
    } else {
        MAX_GROUPED_DEPTH
    };
    let mut queue: VecDeque<(PathBuf, usize)> = child_dirs(root)
        .into_iter()
        .map(|name| {
            let depth = if name == "skills" { 0 } else { 1 };
            (root.join(name), depth)
        })
        .collect();
    let (mut found, mut visited) = (Vec::new(), 0);
    while let Some((dir, depth)) = queue.pop_front() {
        visited += 1;
        if visited > MAX_CANDIDATES_PER_ROOT || found.len() >= MAX_SKILLS_PER_ROOT {
            tracing::warn!(root = %root.display(), "skills root reached its discovery limit; truncating");
            break;
        }
        if has_skill_file(&dir) {
            found.push(dir);
        } else if depth < max_depth {
            queue.extend(
                child_dirs(&dir)
                    .into_iter()
                    .map(|name| (dir.join(name), depth + 1)),
            );
        }
    }
    found
}

fn has_skill_file(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join("SKILL.md")).is_ok()
}

fn child_dirs(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = read
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && name != "node_modules")
        .filter(|name| dir.join(name).is_dir())
        .collect();
    names.sort();
    names
}

/// Every skill in the configured roots, one per name (higher tier wins), sorted by name.
pub fn load_skills(settings: &SkillsSettings) -> Vec<SkillEntry> {
    let mut by_name: HashMap<String, SkillEntry> = HashMap::new();
    for root in settings.scan_roots() {
        for dir in discover_skill_dirs(&root.dir, &root.source) {
            match load_skill_dir(&dir, &root.source) {
                Ok(entry) => {
                    by_name.insert(entry.name.clone(), entry);
                }
                Err(e) => {
                    tracing::warn!(source = %root.source, dir = %dir.display(), error = %e, "skipping invalid skill")
                }
            }
        }
    }
    let mut entries: Vec<SkillEntry> = by_name.into_values().collect();
    entries.sort_by(|a, b| locale_cmp(&a.name, &b.name));
    entries
}

/// Approximates `localeCompare(b, "en")`: case-insensitive first, then lowercase before
/// uppercase, then code points.
fn locale_cmp(a: &str, b: &str) -> Ordering {
    let folded = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
    folded(a).cmp(&folded(b)).then_with(|| {
        a.chars()
            .zip(b.chars())
            .find(|(x, y)| x != y)
            .map_or(Ordering::Equal, |(x, y)| {
                x.is_uppercase().cmp(&y.is_uppercase())
            })
            .then_with(|| a.cmp(b))
    })
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

/// The `skills.status` payload.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub workspace_dir: String,
    pub managed_skills_dir: String,
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_skill_filter: Option<Vec<String>>,
    pub skills: Vec<SkillStatus>,
}

/// One entry of `skills.status`; field order is the original's.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillStatus {
    pub name: String,
    pub description: String,
    pub source: String,
    pub bundled: bool,
    pub file_path: String,
    pub base_dir: String,
    pub skill_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    pub always: bool,
    pub disabled: bool,
    pub blocked_by_allowlist: bool,
    pub blocked_by_agent_filter: bool,
    pub eligible: bool,
    pub platform_incompatible: bool,
    pub model_visible: bool,
    pub user_invocable: bool,
    pub command_visible: bool,
    pub requirements: RequirementLists,
    pub missing: RequirementLists,
    pub config_checks: Vec<ConfigCheck>,
    pub install: Vec<InstallOption>,
}

/// `requirements` / `missing`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequirementLists {
    pub bins: Vec<String>,
    pub any_bins: Vec<String>,
    pub env: Vec<String>,
    pub config: Vec<String>,
    pub os: Vec<String>,
}

impl RequirementLists {
    fn is_empty(&self) -> bool {
        self.bins.is_empty()
            && self.any_bins.is_empty()
            && self.env.is_empty()
            && self.config.is_empty()
            && self.os.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConfigCheck {
    pub path: String,
    pub satisfied: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InstallOption {
    pub id: String,
    pub kind: String,
    pub label: String,
    pub bins: Vec<String>,
}

/// `skills.status` as JSON. Blocking: see the module docs.
pub fn skills_status(settings: &SkillsSettings, agent_id: &str, probe: &HostProbe) -> Value {
    serde_json::to_value(build_status(settings, agent_id, probe)).unwrap_or(Value::Null)
}

/// `skills.status` against the real process environment and PATH.
pub fn skills_status_for_process(settings: &SkillsSettings, agent_id: &str) -> Value {
    skills_status(settings, agent_id, &HostProbe::from_process())
}

/// Loads the skills and evaluates each one.
pub fn build_status(settings: &SkillsSettings, agent_id: &str, probe: &HostProbe) -> StatusReport {
    let skills = load_skills(settings)
        .iter()
        .map(|e| skill_status(e, settings, probe))
        .collect();
    StatusReport {
        workspace_dir: settings.workspace_dir.display().to_string(),
        managed_skills_dir: settings.managed_dir.display().to_string(),
        agent_id: agent_id.to_string(),
        agent_skill_filter: settings.agent_filter.clone(),
        skills,
    }
}

/// One skill's status, following the original's `buildSkillStatus`.
pub fn skill_status(
    entry: &SkillEntry,
    settings: &SkillsSettings,
    probe: &HostProbe,
) -> SkillStatus {
    let key = entry.skill_key().to_string();
    let skill_config = settings.skill_config(&key);
    let meta = entry.metadata.clone().unwrap_or_default();
    let disabled = settings.disabled.contains(&key)
        || skill_config
            .and_then(|c| c.get("enabled"))
            .and_then(Value::as_bool)
            == Some(false);
    let blocked_by_allowlist = !bundled_allowed(entry, &key, &settings.config);
    let blocked_by_agent_filter = settings
        .agent_filter
        .as_ref()
        .is_some_and(|names| !names.contains(&entry.name));
    let always = meta.always == Some(true);
    let env_ok = |name: &str| env_satisfied(name, probe, skill_config, meta.primary_env.as_deref());
    let check = evaluate(&meta, always, probe, env_ok, |path| {
        config_path_truthy(&settings.config, path)
    });
    let eligible = !disabled && !blocked_by_allowlist && check.satisfied;
    let available = eligible && !blocked_by_agent_filter;
    let homepage = meta
        .homepage
        .clone()
        .or_else(|| {
            ["homepage", "website", "url"]
                .iter()
                .find_map(|k| entry.front_matter.get(*k).cloned())
        })
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    SkillStatus {
        name: entry.name.clone(),
        description: entry.description.clone(),
        source: entry.source.clone(),
        bundled: entry.is_bundled(),
        file_path: entry.file_path.display().to_string(),
        base_dir: entry.base_dir.display().to_string(),
        skill_key: key,
        primary_env: meta.primary_env.clone(),
        emoji: meta
            .emoji
            .clone()
            .or_else(|| entry.front_matter.get("emoji").cloned())
            .filter(|e| !e.is_empty()),
        homepage,
        always,
        disabled,
        blocked_by_allowlist,
        blocked_by_agent_filter,
        eligible,
        platform_incompatible: !check.missing.os.is_empty(),
        model_visible: available && !entry.disable_model_invocation,
        user_invocable: entry.user_invocable,
        command_visible: available && entry.user_invocable,
        install: install_options(&meta, &InstallPrefs::from_config(&settings.config), probe),
        requirements: check.required,
        missing: check.missing,
        config_checks: check.config_checks,
    }
}

struct RequirementCheck {
    required: RequirementLists,
    missing: RequirementLists,
    config_checks: Vec<ConfigCheck>,
    satisfied: bool,
}

/// The original's `evaluateRequirementsFromMetadataWithRemote` without the remote part. `os`
/// is always enforced; `always` clears every other missing list.
fn evaluate(
    meta: &SkillMetadata,
    always: bool,
    probe: &HostProbe,
    env_ok: impl Fn(&str) -> bool,
    config_ok: impl Fn(&str) -> bool,
) -> RequirementCheck {
    let req = &meta.requires;
    let required = RequirementLists {
        bins: req.bins.clone(),
        any_bins: req.any_bins.clone(),
        env: req.env.clone(),
        config: req.config.clone(),
        os: meta.os.clone(),
    };
    let platform = normalize_platform(probe.platform());
    let os_ok = meta.os.is_empty() || meta.os.iter().any(|os| normalize_platform(os) == platform);
    let any_ok = req.any_bins.is_empty() || req.any_bins.iter().any(|b| probe.has_bin(b));
    let config_checks: Vec<ConfigCheck> = req
        .config
        .iter()
        .map(|path| ConfigCheck {
            path: path.clone(),
            satisfied: config_ok(path),
        })
        .collect();
    let mut missing = RequirementLists {
        bins: req
            .bins
            .iter()
            .filter(|b| !probe.has_bin(b))
            .cloned()
            .collect(),
        any_bins: if any_ok {
            Vec::new()
        } else {
            req.any_bins.clone()
        },
        env: req.env.iter().filter(|e| !env_ok(e)).cloned().collect(),
        config: config_checks
            .iter()
            .filter(|c| !c.satisfied)
            .map(|c| c.path.clone())
            .collect(),
        os: if os_ok { Vec::new() } else { meta.os.clone() },
    };
    if always {
        missing = RequirementLists {
            os: missing.os,
            ..RequirementLists::default()
        };
    }
    let satisfied = missing.is_empty();
    RequirementCheck {
        required,
        missing,
        config_checks,
        satisfied,
    }
}

/// Process env, then `skills.entries.<key>.env`, then `apiKey` standing in for `primaryEnv`.
fn env_satisfied(
    name: &str,
    probe: &HostProbe,
    skill_config: Option<&Value>,
    primary_env: Option<&str>,
) -> bool {
    let non_blank = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    probe.env_is_set(name)
        || non_blank(
            skill_config
                .and_then(|c| c.get("env"))
                .and_then(|env| env.get(name)),
        )
        || (primary_env == Some(name)
            && skill_config
                .and_then(|c| c.get("apiKey"))
                .is_some_and(|k| k.is_object() || non_blank(Some(k))))
}

/// `skills.allowBundled`, when a non-empty list, restricts bundled skills to the listed keys or
/// names; other sources are never blocked.
fn bundled_allowed(entry: &SkillEntry, key: &str, config: &Value) -> bool {
    let allow = string_list(
        config
            .pointer("/skills/allowBundled")
            .filter(|v| v.is_array()),
    );
    allow.is_empty() || !entry.is_bundled() || allow.iter().any(|a| a == key || *a == entry.name)
}

/// Dotted-path truthiness like the original's `isConfigPathTruthyWithDefaults`.
fn config_path_truthy(config: &Value, path: &str) -> bool {
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    if parts
        .iter()
        .any(|p| matches!(*p, "__proto__" | "prototype" | "constructor"))
    {
        return false;
    }
    let mut current = Some(config);
    for part in &parts {
        current = current.and_then(|v| match v {
            Value::Object(map) => map.get(*part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        });
    }
    match current {
        None => CONFIG_DEFAULTS
            .iter()
            .find(|(p, _)| *p == path)
            .is_some_and(|(_, v)| *v),
        Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// `skills.install.preferBrew` (default true) and `nodeManager` (npm, pnpm, yarn, bun).
struct InstallPrefs {
    prefer_brew: bool,
    node_manager: String,
}

impl InstallPrefs {
    fn from_config(config: &Value) -> Self {
        let install = config.pointer("/skills/install");
        let manager = install
            .and_then(|i| i.get("nodeManager"))
            .and_then(Value::as_str)
            .map(|m| m.trim().to_lowercase())
            .filter(|m| ["npm", "pnpm", "yarn", "bun"].contains(&m.as_str()));
        Self {
            prefer_brew: install
                .and_then(|i| i.get("preferBrew"))
                .and_then(Value::as_bool)
                .unwrap_or(true),
            node_manager: manager.unwrap_or_else(|| "npm".to_string()),
        }
    }
}

/// The install choices shown for a skill: none off-platform; every recipe when all are
/// downloads; otherwise the single preferred recipe.
fn install_options(
    meta: &SkillMetadata,
    prefs: &InstallPrefs,
    probe: &HostProbe,
) -> Vec<InstallOption> {
    let platform = normalize_platform(probe.platform());
    let on_platform =
        |os: &[String]| os.is_empty() || os.iter().any(|o| normalize_platform(o) == platform);
    if !on_platform(&meta.os) {
        return Vec::new();
    }
    let candidates: Vec<(usize, &InstallSpec)> = meta
        .install
        .iter()
        .enumerate()
        .filter(|(_, s)| on_platform(&s.os))
        .collect();
    if candidates.iter().all(|(_, s)| s.kind == "download") {
        return candidates
            .into_iter()
            .map(|(i, s)| install_option(i, s, prefs))
            .collect();
    }
    preferred_install(&candidates, prefs, probe)
        .map(|(i, s)| install_option(i, s, prefs))
        .into_iter()
        .collect()
}

/// brew if preferred and present; then uv, node, brew if present, go, download, brew, first.
fn preferred_install<'s>(
    candidates: &[(usize, &'s InstallSpec)],
    prefs: &InstallPrefs,
    probe: &HostProbe,
) -> Option<(usize, &'s InstallSpec)> {
    let find = |kind: &str| candidates.iter().find(|(_, s)| s.kind == kind).copied();
    let brew = find("brew");
    let brew_present = brew.filter(|_| probe.has_bin("brew"));
    brew_present
        .filter(|_| prefs.prefer_brew)
        .or_else(|| find("uv"))
        .or_else(|| find("node"))
        .or(brew_present)
        .or_else(|| find("go"))
        .or_else(|| find("download"))
        .or(brew)
        .or_else(|| candidates.first().copied())
}

fn install_option(index: usize, spec: &InstallSpec, prefs: &InstallPrefs) -> InstallOption {
    let id = spec
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{index}", spec.kind))
        .trim()
        .to_string();
    InstallOption {
        id,
        kind: spec.kind.clone(),
        label: install_label(spec, prefs),
        bins: spec.bins.clone(),
    }
}

/// Node recipes always name the package and manager; others keep their label or get one.
fn install_label(spec: &InstallSpec, prefs: &InstallPrefs) -> String {
    if let (true, Some(pkg)) = (spec.kind == "node", &spec.package) {
        return format!("Install {pkg} ({})", prefs.node_manager);
    }
    if let Some(label) = spec
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        return label.to_string();
    }
    match (
        spec.kind.as_str(),
        &spec.formula,
        &spec.package,
        &spec.module,
        &spec.url,
    ) {
        ("brew", Some(formula), ..) => format!("Install {formula} (brew)"),
        ("go", _, _, Some(module), _) => format!("Install {module} (go)"),
        ("uv", _, Some(pkg), ..) => format!("Install {pkg} (uv)"),
        ("download", .., Some(url)) => {
            let last = url
                .rsplit('/')
                .next()
                .filter(|l| !l.is_empty())
                .unwrap_or(url);
            format!("Download {last}")
        }
        _ => "Run installer".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Bins
// ---------------------------------------------------------------------------------------------

/// Every binary the skills require, accept (`anyBins`) or install; sorted, deduplicated.
pub fn collect_bins(entries: &[SkillEntry]) -> Vec<String> {
    let mut bins = BTreeSet::new();
    for meta in entries.iter().filter_map(|e| e.metadata.as_ref()) {
        let install = meta.install.iter().flat_map(|s| s.bins.iter());
        for bin in meta
            .requires
            .bins
            .iter()
            .chain(&meta.requires.any_bins)
            .chain(install)
        {
            if !bin.trim().is_empty() {
                bins.insert(bin.trim().to_string());
            }
        }
    }
    bins.into_iter().collect()
}

/// `skills.bins` as JSON: `{"bins": [...]}`. Blocking: see the module docs.
pub fn skills_bins(settings: &SkillsSettings) -> Value {
    serde_json::json!({ "bins": collect_bins(&load_skills(settings)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

    /// The bundled 1password SKILL.md (front matter and the start of the body), verbatim.
    const ONEPASSWORD: &str = r#"---
name: 1password
description: "Set up and use 1Password CLI for sign-in, desktop integration, and reading or injecting secrets."
homepage: https://developer.1password.com/docs/cli/get-started/
metadata:
  {
    "openclaw":
      {
        "emoji": "🔐",
        "requires": { "bins": ["op"] },
        "install":
          [
            {
              "id": "brew",
              "kind": "brew",
              "formula": "1password-cli",
              "bins": ["op"],
              "label": "Install 1Password CLI (brew)",
            },
          ],
      },
  }
---

# 1Password CLI

Follow the official CLI get-started steps. Don't guess install commands.
"#;

    /// The bundled coding-agent front matter: anyBins, config requirement, node installers.
    const CODING_AGENT: &str = r#"---
name: coding-agent
description: "Delegate coding work to Codex, Claude Code, or OpenCode as background workers; not simple edits or read-only code lookup."
metadata:
  {
    "openclaw":
      {
        "emoji": "🧩",
        "requires":
          {
            "anyBins": ["claude", "codex", "opencode"],
            "config": ["skills.entries.coding-agent.enabled"],
          },
        "install":
          [
            {
              "id": "node-claude",
              "kind": "node",
              "package": "@anthropic-ai/claude-code",
              "bins": ["claude"],
              "label": "Install Claude Code CLI (npm)",
            },
            {
              "id": "node-codex",
              "kind": "node",
              "package": "@openai/codex",
              "bins": ["codex"],
              "label": "Install Codex CLI (npm)",
            },
          ],
      },
  }
---
body
"#;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, AtomicOrdering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("ringgate-skills-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn skill(&self, rel: &str, content: &str) -> PathBuf {
            let dir = self.0.join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("SKILL.md"), content).unwrap();
            dir
        }

        /// An executable (or not) file in `<tmp>/bin`.
        fn bin(&self, name: &str, executable: bool) {
            use std::os::unix::fs::PermissionsExt;
            let dir = self.0.join("bin");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            let mode = if executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }

        fn probe(&self, env: &[(&str, &str)], platform: &str) -> HostProbe<'static> {
            let env: HashMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            HostProbe::new(
                move |k| env.get(k).cloned(),
                self.0.join("bin").as_os_str(),
                platform,
            )
        }

        fn settings(&self) -> SkillsSettings {
            let mut s = SkillsSettings::new(&self.0.join("state"), self.0.join("workspace"));
            s.roots
                .push(SkillRoot::new(self.0.join("extra"), source::EXTRA));
            s
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn simple(name: &str, meta: &str) -> String {
        format!(
            "---\nname: {name}\ndescription: The {name} skill.\nmetadata: {meta}\n---\n# {name}\n"
        )
    }

    fn status_of<'r>(report: &'r Value, name: &str) -> &'r Value {
        report["skills"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
    }

    #[test]
    fn front_matter_of_a_bundled_skill() {
        let front = parse_front_matter(ONEPASSWORD).unwrap();
        assert_eq!(front["name"], "1password");
        assert_eq!(
            front["description"],
            "Set up and use 1Password CLI for sign-in, desktop integration, and reading or injecting secrets."
        );
        assert_eq!(
            front["homepage"],
            "https://developer.1password.com/docs/cli/get-started/"
        );
        let meta = parse_metadata(&front).unwrap();
        assert_eq!(meta.emoji.as_deref(), Some("🔐"));
        assert_eq!(meta.requires.bins, ["op"]);
        assert_eq!(meta.install.len(), 1);
        assert_eq!(meta.install[0].formula.as_deref(), Some("1password-cli"));
        assert_eq!(
            meta.install[0].label.as_deref(),
            Some("Install 1Password CLI (brew)")
        );
    }

    #[test]
    fn front_matter_scalar_shapes() {
        let text = "\u{feff}---\r\nname: 'it''s'\r\ndescription: >\r\n  folded\r\n  text\r\nplain: value # note\r\n\
                    esc: \"a\\\"b\"\r\nuser-invocable: false\r\nmetadata: { \"openclaw\": { \"os\": \"darwin, linux\" } }\r\n---\r\nbody";
        let front = parse_front_matter(text).unwrap();
        assert_eq!(front["name"], "it's");
        assert_eq!(front["description"], "folded text");
        assert_eq!(front["plain"], "value");
        assert_eq!(front["esc"], "a\"b");
        assert!(!parse_bool(front.get("user-invocable"), true));
        assert_eq!(parse_metadata(&front).unwrap().os, ["darwin", "linux"]);
    }

    #[test]
    fn front_matter_absent_or_unterminated() {
        assert_eq!(
            parse_front_matter("# just markdown\n").unwrap(),
            FrontMatter::new()
        );
        assert_eq!(
            parse_front_matter("---\nname: x\n"),
            Err(FrontMatterError::Unterminated)
        );
        // `----` is not a delimiter; the block ends at the real one.
        let front = parse_front_matter("---\nname: x\n----\n---\nrest").unwrap();
        assert_eq!(front.len(), 1);
    }

    #[test]
    fn invalid_install_specs_are_dropped() {
        let front = parse_front_matter(&simple(
            "x",
            r#"{"openclaw":{"install":[{"kind":"brew"},{"kind":"apt","package":"x"},{"kind":"node","package":"--evil"},{"kind":"go","module":"example.com/x@latest"},{"kind":"download","url":"ftp://x"}]}}"#,
        ))
        .unwrap();
        let meta = parse_metadata(&front).unwrap();
        assert_eq!(meta.install.len(), 1);
        assert_eq!(meta.install[0].kind, "go");
    }

    #[test]
    fn real_skill_reports_missing_bin_and_install() {
        let tmp = TempDir::new("onepw");
        tmp.skill("extra/1password", ONEPASSWORD);
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        assert_eq!(report["agentId"], "main");
        assert_eq!(
            report["managedSkillsDir"],
            tmp.0.join("state/skills").display().to_string()
        );
        let s = status_of(&report, "1password");
        let expected = json!({
            "name": "1password",
            "description": "Set up and use 1Password CLI for sign-in, desktop integration, and reading or injecting secrets.",
            "source": "openclaw-extra",
            "bundled": false,
            "filePath": tmp.0.join("extra/1password/SKILL.md").display().to_string(),
            "baseDir": tmp.0.join("extra/1password").display().to_string(),
            "skillKey": "1password",
            "emoji": "🔐",
            "homepage": "https://developer.1password.com/docs/cli/get-started/",
            "always": false, "disabled": false, "blockedByAllowlist": false, "blockedByAgentFilter": false,
            "eligible": false, "platformIncompatible": false, "modelVisible": false,
            "userInvocable": true, "commandVisible": false,
            "requirements": {"bins": ["op"], "anyBins": [], "env": [], "config": [], "os": []},
            "missing": {"bins": ["op"], "anyBins": [], "env": [], "config": [], "os": []},
            "configChecks": [],
            "install": [{"id": "brew", "kind": "brew", "label": "Install 1Password CLI (brew)", "bins": ["op"]}]
        });
        assert_eq!(s, &expected);
        // Same key order as the original's capture.
        let keys: Vec<&String> = s.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            expected.as_object().unwrap().keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn present_bin_makes_skill_eligible_but_not_an_unexecutable_one() {
        let tmp = TempDir::new("bins");
        tmp.skill("extra/1password", ONEPASSWORD);
        tmp.bin("op", false);
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        assert_eq!(status_of(&report, "1password")["eligible"], false);
        tmp.bin("op", true);
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        let s = status_of(&report, "1password");
        assert_eq!(s["eligible"], true);
        assert_eq!(s["modelVisible"], true);
        assert_eq!(s["commandVisible"], true);
        assert_eq!(s["missing"]["bins"], json!([]));
    }

    #[test]
    fn any_bins_and_config_requirements() {
        let tmp = TempDir::new("anybins");
        tmp.skill("extra/coding-agent", CODING_AGENT);
        let settings = tmp.settings();
        let report = skills_status(&settings, "main", &tmp.probe(&[], "linux"));
        let s = status_of(&report, "coding-agent");
        assert_eq!(
            s["missing"]["anyBins"],
            json!(["claude", "codex", "opencode"])
        );
        assert_eq!(
            s["missing"]["config"],
            json!(["skills.entries.coding-agent.enabled"])
        );
        assert_eq!(
            s["configChecks"],
            json!([{"path": "skills.entries.coding-agent.enabled", "satisfied": false}])
        );
        // Node recipes are preferred over nothing else; the label names package and manager.
        assert_eq!(
            s["install"],
            json!([{"id": "node-claude", "kind": "node", "label": "Install @anthropic-ai/claude-code (npm)", "bins": ["claude"]}])
        );

        // One of the anyBins is enough; the config path becomes truthy.
        tmp.bin("codex", true);
        let mut settings = settings;
        settings.config = json!({"skills": {"entries": {"coding-agent": {"enabled": true}}}});
        let report = skills_status(&settings, "main", &tmp.probe(&[], "linux"));
        let s = status_of(&report, "coding-agent");
        assert_eq!(s["missing"]["anyBins"], json!([]));
        assert_eq!(s["configChecks"][0]["satisfied"], true);
        assert_eq!(s["eligible"], true);
    }

    #[test]
    fn env_requirements_from_process_env_config_or_api_key() {
        let tmp = TempDir::new("env");
        let meta =
            r#"{"openclaw":{"primaryEnv":"API_KEY","requires":{"env":["API_KEY","OTHER"]}}}"#;
        tmp.skill("extra/envy", &simple("envy", meta));
        let mut settings = tmp.settings();
        let report = skills_status(&settings, "main", &tmp.probe(&[("OTHER", "  ")], "linux"));
        let s = status_of(&report, "envy");
        assert_eq!(s["primaryEnv"], "API_KEY");
        assert_eq!(s["missing"]["env"], json!(["API_KEY", "OTHER"]));

        settings.config = json!({"skills": {"entries": {"envy": {"apiKey": "sk-1"}}}});
        let report = skills_status(&settings, "main", &tmp.probe(&[("OTHER", "x")], "linux"));
        let s = status_of(&report, "envy");
        assert_eq!(s["missing"]["env"], json!([]));
        assert_eq!(s["eligible"], true);
    }

    #[test]
    fn os_incompatibility_and_always() {
        let tmp = TempDir::new("os");
        tmp.skill("extra/mac-only", &simple("mac-only", r#"{"openclaw":{"os":["darwin"],"requires":{"bins":["memo"]},"install":[{"id":"brew","kind":"brew","formula":"memo","bins":["memo"]}]}}"#));
        tmp.skill(
            "extra/macos-alias",
            &simple("macos-alias", r#"{"openclaw":{"os":["macos"]}}"#),
        );
        tmp.skill("extra/unix", &simple("unix", r#"{"openclaw":{"always":true,"os":["darwin","linux"],"requires":{"bins":["nope"]}}}"#));
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        let mac = status_of(&report, "mac-only");
        assert_eq!(mac["platformIncompatible"], true);
        assert_eq!(mac["missing"]["os"], json!(["darwin"]));
        assert_eq!(mac["missing"]["bins"], json!(["memo"]));
        assert_eq!(mac["install"], json!([]));
        assert_eq!(mac["eligible"], false);
        // `always` waives bins but not os; linux is listed so it is eligible.
        let unix = status_of(&report, "unix");
        assert_eq!(unix["always"], true);
        assert_eq!(unix["requirements"]["os"], json!(["darwin", "linux"]));
        assert_eq!(
            unix["missing"],
            json!({"bins": [], "anyBins": [], "env": [], "config": [], "os": []})
        );
        assert_eq!(unix["eligible"], true);

        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "darwin"));
        assert_eq!(
            status_of(&report, "macos-alias")["platformIncompatible"],
            false
        );
        assert_eq!(
            status_of(&report, "mac-only")["install"][0]["label"],
            "Install memo (brew)"
        );
    }

    #[test]
    fn disabled_allowlist_and_agent_filter() {
        let tmp = TempDir::new("disabled");
        tmp.skill("extra/free", &simple("free", "{}"));
        tmp.skill("bundled/packaged", &simple("packaged", "{}"));
        tmp.skill("extra/filtered", &simple("filtered", "{}"));
        let mut settings = tmp.settings();
        settings
            .roots
            .push(SkillRoot::new(tmp.0.join("bundled"), source::BUNDLED));
        settings.disabled.insert("free".to_string());
        settings.config = json!({"skills": {"allowBundled": ["something-else"]}});
        settings.agent_filter = Some(vec!["free".to_string(), "packaged".to_string()]);
        let report = skills_status(&settings, "main", &tmp.probe(&[], "linux"));
        assert_eq!(report["agentSkillFilter"], json!(["free", "packaged"]));
        let free = status_of(&report, "free");
        assert_eq!(
            (free["disabled"].as_bool(), free["eligible"].as_bool()),
            (Some(true), Some(false))
        );
        let packaged = status_of(&report, "packaged");
        assert_eq!(packaged["bundled"], true);
        assert_eq!(packaged["blockedByAllowlist"], true);
        assert_eq!(packaged["eligible"], false);
        let filtered = status_of(&report, "filtered");
        assert_eq!(filtered["blockedByAgentFilter"], true);
        assert_eq!(filtered["eligible"], true);
        assert_eq!(filtered["modelVisible"], false);
        assert_eq!(filtered["commandVisible"], false);

        // Config `enabled: false` disables too.
        settings.disabled.clear();
        settings.config = json!({"skills": {"entries": {"free": {"enabled": false}}}});
        let report = skills_status(&settings, "main", &tmp.probe(&[], "linux"));
        assert_eq!(status_of(&report, "free")["disabled"], true);
    }

    #[test]
    fn sorted_by_name_higher_tier_wins_and_invalid_skipped() {
        let tmp = TempDir::new("order");
        tmp.skill("extra/zeta", &simple("zeta", "{}"));
        tmp.skill("extra/Beta", &simple("Beta", "{}"));
        tmp.skill("extra/alpha", &simple("alpha", "{}"));
        tmp.skill("extra/group/nested", &simple("nested", "{}"));
        tmp.skill("extra/no-description", "---\nname: no-description\n---\n");
        tmp.skill("extra/unterminated", "---\nname: x\ndescription: y\n");
        tmp.skill("extra/.hidden", &simple("hidden", "{}"));
        tmp.skill(
            "extra/dir-named",
            "---\ndescription: Named by its directory.\n---\n",
        );
        // Managed outranks extra.
        tmp.skill(
            "state/skills/alpha",
            &simple("alpha", r#"{"openclaw":{"emoji":"🅰️"}}"#),
        );
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        let names: Vec<&str> = report["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "Beta", "dir-named", "nested", "zeta"]);
        let alpha = status_of(&report, "alpha");
        assert_eq!(alpha["source"], "openclaw-managed");
        assert_eq!(alpha["emoji"], "🅰️");
        assert!(alpha.get("homepage").is_none());
    }

    #[test]
    fn a_root_that_is_itself_a_skill() {
        let tmp = TempDir::new("rootskill");
        let dir = tmp.skill("single", &simple("single", "{}"));
        assert_eq!(discover_skill_dirs(&dir, source::EXTRA), vec![dir]);
        assert!(discover_skill_dirs(&tmp.0.join("missing"), source::EXTRA).is_empty());
    }

    #[test]
    fn download_only_recipes_are_all_offered_for_the_platform() {
        let tmp = TempDir::new("downloads");
        let meta = r#"{"openclaw":{"install":[
            {"id":"mac","kind":"download","os":["darwin"],"url":"https://e.x/mac.tar.bz2"},
            {"id":"linux","kind":"download","os":["linux"],"url":"https://e.x/linux.tar.bz2"},
            {"kind":"download","url":"https://e.x/model.tar.bz2"}]}}"#;
        tmp.skill("extra/dl", &simple("dl", &meta.replace('\n', " ")));
        let report = skills_status(&tmp.settings(), "main", &tmp.probe(&[], "linux"));
        assert_eq!(
            status_of(&report, "dl")["install"],
            json!([
                {"id": "linux", "kind": "download", "label": "Download linux.tar.bz2", "bins": []},
                {"id": "download-2", "kind": "download", "label": "Download model.tar.bz2", "bins": []}
            ])
        );
    }

    #[test]
    fn bins_shape() {
        let tmp = TempDir::new("binlist");
        tmp.skill("extra/1password", ONEPASSWORD);
        tmp.skill("extra/coding-agent", CODING_AGENT);
        tmp.skill("extra/trello", &simple("trello", r#"{"openclaw":{"requires":{"bins":["jq"," curl "]},"install":[{"kind":"brew","formula":"jq","bins":["jq"]}]}}"#));
        assert_eq!(
            skills_bins(&tmp.settings()),
            json!({"bins": ["claude", "codex", "curl", "jq", "op", "opencode"]})
        );
    }

    #[test]
    fn locale_order() {
        let mut names = vec!["b", "A", "a", "taskflow-inbox-triage", "taskflow", "B"];
        names.sort_by(|a, b| locale_cmp(a, b));
        assert_eq!(
            names,
            ["a", "A", "b", "B", "taskflow", "taskflow-inbox-triage"]
        );
    }
}
