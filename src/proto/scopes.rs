//! The permission gate: role + operator-scope authorization of every method (protocol §4).
//!
//! The method → scope table is data ([`super::scope_table::CORE_METHODS`], generated from the
//! reference); this module holds the rules that interpret it: scope implications (admin ⊇ all,
//! write ⊇ read/talk/sessions.*), the session-scoped fallbacks, params-derived ("dynamic")
//! scopes, reserved admin prefixes, and "no descriptor ⇒ admin". Everything here is pure.

use std::{collections::HashMap, sync::OnceLock};

use serde_json::Value;

pub use super::scope_table::CORE_METHODS;

/// Method is absent from `hello-ok.features.methods` but callable.
pub const HIDDEN: u8 = 1;
/// Method answers `UNAVAILABLE` while startup sidecars load (ringgate has none).
pub const STARTUP: u8 = 2;
/// Control-plane write: rate limited to 30 per 60 s per (method, device or IP).
pub const CP_WRITE: u8 = 4;

/// The closed set of operator scopes (`src/gateway/operator-scopes.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Scope {
    Admin = 1 << 0,
    Read = 1 << 1,
    Write = 1 << 2,
    SessionsRead = 1 << 3,
    SessionsWrite = 1 << 4,
    Approvals = 1 << 5,
    Questions = 1 << 6,
    Pairing = 1 << 7,
    Talk = 1 << 8,
    TalkSecrets = 1 << 9,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::Admin,
        Scope::Read,
        Scope::Write,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::Approvals,
        Scope::Questions,
        Scope::Pairing,
        Scope::Talk,
        Scope::TalkSecrets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "operator.admin",
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::SessionsRead => "operator.sessions.read",
            Scope::SessionsWrite => "operator.sessions.write",
            Scope::Approvals => "operator.approvals",
            Scope::Questions => "operator.questions",
            Scope::Pairing => "operator.pairing",
            Scope::Talk => "operator.talk",
            Scope::TalkSecrets => "operator.talk.secrets",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }
}

/// What a method requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    /// An operator holding this scope (with implications).
    Scope(Scope),
    /// Only `role: "node"` connections may call it.
    NodeRole,
    /// Derived from params (§4.4), see [`dynamic_scope`].
    Dynamic,
}

/// One row of the method table.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    pub name: &'static str,
    pub req: Req,
    pub flags: u8,
}

/// The granted scopes of a connection: known scopes as bits for the per-request check, plus
/// any unknown `operator.*` strings (which only an exact match satisfies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    bits: u16,
    unknown: Vec<Box<str>>,
}

impl ScopeSet {
    pub fn from_strs<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = ScopeSet::default();
        for s in scopes {
            match Scope::parse(s) {
                Some(sc) => set.bits |= sc as u16,
                None => {
                    if !set.unknown.iter().any(|u| &**u == s) {
                        set.unknown.push(s.into());
                    }
                }
            }
        }
        set
    }

    pub fn has(&self, s: Scope) -> bool {
        self.bits & s as u16 != 0
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0 && self.unknown.is_empty()
    }

    /// `operatorScopeSatisfied(required, granted)` (§4.2).
    pub fn satisfies(&self, required: Scope) -> bool {
        if self.has(Scope::Admin) || self.has(required) {
            return true;
        }
        match required {
            Scope::Read | Scope::Talk | Scope::SessionsWrite => self.has(Scope::Write),
            Scope::SessionsRead => {
                self.has(Scope::Write) || self.has(Scope::Read) || self.has(Scope::SessionsWrite)
            }
            _ => false,
        }
    }
}

/// The connection's role (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

/// Why a call was refused; the caller turns this into the wire error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// `INVALID_REQUEST "unauthorized role: <role>"`; counts toward the flood guard.
    Role(Role),
    /// `FORBIDDEN "missing scope: <scope>"` with `details.code MISSING_SCOPE`.
    MissingScope(&'static str),
}

fn table() -> &'static HashMap<&'static str, &'static MethodSpec> {
    static T: OnceLock<HashMap<&'static str, &'static MethodSpec>> = OnceLock::new();
    T.get_or_init(|| CORE_METHODS.iter().map(|m| (m.name, m)).collect())
}

/// Looks a core method up by name.
pub fn spec(method: &str) -> Option<&'static MethodSpec> {
    table().get(method).copied()
}

const SESSION_READ: &[&str] = &[
    "sessions.list",
    "sessions.subscribe",
    "sessions.messages.subscribe",
    "sessions.messages.unsubscribe",
    "sessions.viewers.set",
    "sessions.preview",
    "sessions.describe",
    "sessions.branches.list",
    "sessions.get",
    "sessions.resolve",
    "sessions.search",
    "sessions.files.list",
    "sessions.files.get",
    "sessions.setInvolvement",
    "chat.history",
    "chat.startup",
    "chat.metadata",
    "chat.message.get",
    "session.members.list",
    "session.members.listEvidence",
];

const SESSION_WRITE: &[&str] = &[
    "chat.send",
    "chat.abort",
    "sessions.create",
    "sessions.patch",
    "sessions.patchMany",
    "sessions.delete",
    "sessions.fork",
    "sessions.recover",
    "sessions.send",
    "sessions.steer",
    "sessions.abort",
    "sessions.goal.update",
    "sessions.goal.clear",
];

/// `authorizeGatewayMethod` (§4.3): role check, then scope check. The caller looks the
/// handler up only after this passes, so a non-admin calling an unknown method is told
/// `missing scope: operator.admin`, as the original does.
pub fn authorize(
    method: &str,
    role: Role,
    scopes: &ScopeSet,
    params: Option<&Value>,
) -> Result<(), Denied> {
    authorize_spec(method, spec(method), role, scopes, params)
}

/// [`authorize`] with the method's table entry already looked up (`spec(method)`): the request
/// path looks it up once for the permission gate and the metrics label.
pub fn authorize_spec(
    method: &str,
    spec: Option<&'static MethodSpec>,
    role: Role,
    scopes: &ScopeSet,
    params: Option<&Value>,
) -> Result<(), Denied> {
    if method == "health" {
        return Ok(());
    }
    let node_method = matches!(
        spec,
        Some(MethodSpec {
            req: Req::NodeRole,
            ..
        })
    );
    match role {
        Role::Node if node_method => return Ok(()),
        Role::Node => return Err(Denied::Role(Role::Node)),
        Role::Operator if node_method => return Err(Denied::Role(Role::Operator)),
        Role::Operator => {}
    }
    if method == "device.scopes.requestUpgrade" || method == "device.scopes.waitUpgrade" {
        return Ok(());
    }
    if scopes.has(Scope::Admin) {
        return Ok(());
    }
    let required = required_scope(method, spec, params);
    if scopes.satisfies(required) {
        return Ok(());
    }
    if required == Scope::Read
        && SESSION_READ.contains(&method)
        && scopes.satisfies(Scope::SessionsRead)
    {
        return Ok(());
    }
    if required == Scope::Write
        && SESSION_WRITE.contains(&method)
        && scopes.has(Scope::SessionsWrite)
    {
        return Ok(());
    }
    Err(Denied::MissingScope(required.as_str()))
}

/// The scope a call needs, before implications. A core method's descriptor decides (so
/// `config.get` needs `operator.read`, as in the original's `resolveScopedMethod`); the reserved
/// admin prefixes (`config.`, `exec.approvals.`, `wizard.`, `update.`) matter only for methods
/// without a descriptor, which need admin anyway.
fn required_scope(method: &str, spec: Option<&MethodSpec>, params: Option<&Value>) -> Scope {
    match spec.map(|s| s.req) {
        Some(Req::Scope(s)) => s,
        Some(Req::Dynamic) => dynamic_scope(method, params.unwrap_or(&Value::Null)),
        // No descriptor (unknown or plugin method): admin, fail closed.
        Some(Req::NodeRole) | None => Scope::Admin,
    }
}

fn str_field<'a>(p: &'a Value, k: &str) -> Option<&'a str> {
    p.get(k).and_then(Value::as_str)
}

/// Params-dependent scopes (§4.4).
pub fn dynamic_scope(method: &str, p: &Value) -> Scope {
    let truthy = |k: &str| p.get(k).is_some_and(|v| v.as_bool() == Some(true));
    match method {
        "agent" => {
            let msg = str_field(p, "message").unwrap_or("").to_ascii_lowercase();
            let is_cmd = ["/new", "/reset"].iter().any(|c| {
                msg.strip_prefix(c)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
            });
            if is_cmd {
                Scope::Admin
            } else {
                Scope::Write
            }
        }
        "node.invoke" => match str_field(p, "command") {
            Some(
                "browser.proxy" | "browser.proxy.upload.v1" | "fs.listDir" | "terminal.upload",
            ) => Scope::Admin,
            _ => Scope::Write,
        },
        "talk.config" => {
            if truthy("includeSecrets") {
                Scope::TalkSecrets
            } else {
                Scope::Read
            }
        }
        "environments.list" => {
            if p.get("runtimeId").is_some() {
                Scope::Write
            } else {
                Scope::Read
            }
        }
        "channels.pairing.approve" => {
            if truthy("bootstrapCommandOwner") {
                Scope::Admin
            } else {
                Scope::Pairing
            }
        }
        "fs.listDir" => {
            if p.get("nodeId").is_some() {
                Scope::Admin
            } else {
                Scope::Write
            }
        }
        "sessions.patch" => patch_scope(p),
        "sessions.patchMany" => match p.get("patch") {
            Some(patch) => patch_scope(patch),
            None => Scope::Write,
        },
        "sessions.create" => {
            let admin = truthy("incognito")
                || p.get("execNode").is_some()
                || p.get("toolOverrides").is_some()
                || str_field(p, "permissionMode") == Some("full");
            if admin {
                Scope::Admin
            } else {
                Scope::Write
            }
        }
        "sessions.delete" => {
            const ALLOWED: &[&str] = &[
                "key",
                "agentId",
                "deleteTranscript",
                "expectedSessionId",
                "archivedOnly",
            ];
            let only_allowed = p
                .as_object()
                .is_some_and(|o| o.keys().all(|k| ALLOWED.contains(&k.as_str())));
            if truthy("archivedOnly") && only_allowed {
                Scope::Write
            } else {
                Scope::Admin
            }
        }
        "sessions.dispatch" => {
            if p.get("deviceId").is_some() || p.get("autoDevice").is_some() {
                Scope::Write
            } else {
                Scope::Admin
            }
        }
        "sessions.move" => {
            let profile = p
                .get("target")
                .and_then(|t| t.get("kind"))
                .and_then(Value::as_str)
                == Some("profile");
            if profile {
                Scope::Admin
            } else {
                Scope::Write
            }
        }
        // plugins.sessionAction: declared by the plugin action, default write.
        _ => Scope::Write,
    }
}

fn patch_scope(p: &Value) -> Scope {
    const WRITE_KEYS: &[&str] = &[
        "key",
        "agentId",
        "expectedSessionId",
        "expectedLifecycleRevision",
        "expectedPermissionMode",
        "expectedMarkedUnreadAt",
        "label",
        "autoLabel",
        "icon",
        "color",
        "category",
        "boardFace",
        "boardPresentation",
        "pinned",
        "archived",
        "unread",
        "model",
        "agentRuntime",
        "thinkingLevel",
        "fastMode",
        "permissionMode",
    ];
    let Some(o) = p.as_object() else {
        return Scope::Write;
    };
    let write = o.keys().all(|k| WRITE_KEYS.contains(&k.as_str()))
        && str_field(p, "permissionMode") != Some("full");
    if write {
        Scope::Write
    } else {
        Scope::Admin
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(s: &[&str]) -> ScopeSet {
        ScopeSet::from_strs(s.iter().copied())
    }

    #[test]
    fn table_has_every_method_once() {
        assert_eq!(CORE_METHODS.len(), 482);
        assert_eq!(table().len(), 482);
    }

    #[test]
    fn every_method_is_checked_per_table() {
        // For each table row, an operator holding exactly the row's scope passes and an operator
        // with no scopes fails naming that scope (dynamic rows: with empty params).
        for m in CORE_METHODS {
            let none = authorize(m.name, Role::Operator, &ScopeSet::default(), None);
            match m.req {
                Req::NodeRole => {
                    assert_eq!(none, Err(Denied::Role(Role::Operator)), "{}", m.name);
                    assert_eq!(
                        authorize(m.name, Role::Node, &ScopeSet::default(), None),
                        Ok(())
                    );
                }
                _ if m.name == "health" => assert_eq!(none, Ok(())),
                _ if m.name.starts_with("device.scopes.") => assert_eq!(none, Ok(())),
                Req::Scope(s) => {
                    let expect = s;
                    assert_eq!(
                        none,
                        Err(Denied::MissingScope(expect.as_str())),
                        "{}",
                        m.name
                    );
                    assert_eq!(
                        authorize(m.name, Role::Operator, &set(&[expect.as_str()]), None),
                        Ok(()),
                        "{}",
                        m.name
                    );
                    assert_eq!(
                        authorize(m.name, Role::Node, &set(&["operator.admin"]), None),
                        Err(Denied::Role(Role::Node)),
                        "{}",
                        m.name
                    );
                }
                Req::Dynamic => assert!(none.is_err(), "{}", m.name),
            }
        }
    }

    #[test]
    fn implications() {
        let w = set(&["operator.write"]);
        assert!(w.satisfies(Scope::Read));
        assert!(w.satisfies(Scope::Talk));
        assert!(w.satisfies(Scope::SessionsRead));
        assert!(!w.satisfies(Scope::Approvals));
        assert!(!w.satisfies(Scope::Pairing));
        assert!(!set(&["operator.read"]).satisfies(Scope::Write));
        assert!(set(&["operator.admin"]).satisfies(Scope::TalkSecrets));
        assert!(set(&["operator.read"]).satisfies(Scope::SessionsRead));
    }

    #[test]
    fn unknown_method_needs_admin() {
        assert_eq!(
            authorize(
                "no.such.method",
                Role::Operator,
                &set(&["operator.write"]),
                None
            ),
            Err(Denied::MissingScope("operator.admin"))
        );
        assert_eq!(
            authorize(
                "no.such.method",
                Role::Operator,
                &set(&["operator.admin"]),
                None
            ),
            Ok(())
        );
        assert_eq!(
            authorize("no.such.method", Role::Node, &ScopeSet::default(), None),
            Err(Denied::Role(Role::Node))
        );
    }

    #[test]
    fn session_scoped_fallbacks() {
        let sr = set(&["operator.sessions.read"]);
        assert_eq!(authorize("chat.history", Role::Operator, &sr, None), Ok(()));
        assert_eq!(
            authorize("status", Role::Operator, &sr, None),
            Err(Denied::MissingScope("operator.read"))
        );
        let sw = set(&["operator.sessions.write"]);
        assert_eq!(authorize("chat.send", Role::Operator, &sw, None), Ok(()));
    }

    #[test]
    fn dynamic_rules() {
        let w = set(&["operator.write"]);
        let p = json!({"message": "/reset now", "idempotencyKey": "k"});
        assert_eq!(
            authorize("agent", Role::Operator, &w, Some(&p)),
            Err(Denied::MissingScope("operator.admin"))
        );
        let p = json!({"message": "hello /reset", "idempotencyKey": "k"});
        assert_eq!(authorize("agent", Role::Operator, &w, Some(&p)), Ok(()));
        let p = json!({"nodeId": "n", "command": "fs.listDir", "idempotencyKey": "k"});
        assert!(authorize("node.invoke", Role::Operator, &w, Some(&p)).is_err());
        let p = json!({"key": "k", "label": "x"});
        assert_eq!(
            authorize("sessions.patch", Role::Operator, &w, Some(&p)),
            Ok(())
        );
        let p = json!({"key": "k", "sandboxMode": "x"});
        assert!(authorize("sessions.patch", Role::Operator, &w, Some(&p)).is_err());
        let p = json!({"key": "k", "archivedOnly": true});
        assert_eq!(
            authorize("sessions.delete", Role::Operator, &w, Some(&p)),
            Ok(())
        );
        assert!(authorize(
            "sessions.delete",
            Role::Operator,
            &w,
            Some(&json!({"key": "k"}))
        )
        .is_err());
    }

    #[test]
    fn reserved_prefixes_follow_the_descriptor() {
        let r = set(&["operator.read", "operator.write"]);
        assert_eq!(authorize("config.get", Role::Operator, &r, None), Ok(()));
        assert_eq!(
            authorize("config.patch", Role::Operator, &r, None),
            Err(Denied::MissingScope("operator.admin"))
        );
        // Without a descriptor a reserved name is admin-only.
        assert_eq!(
            authorize("config.nope", Role::Operator, &r, None),
            Err(Denied::MissingScope("operator.admin"))
        );
    }
}
