//! The worker channel's admission and vocabulary (the original's closed worker protocol,
//! pinned to openclaw 2026.9.6): the `connect` a worker sends first (no challenge precedes
//! it), the `worker-hello-ok` it checks field by field, the closed method list, and the error
//! shape the worker understands (`details.reason` from its close-reason vocabulary). Every
//! object the worker receives is checked against closed schemas, so answers here carry exactly
//! the keys it expects.

use serde_json::{json, Value};

use super::credential::{Grant, Minter, Refused};

/// `rpcSetVersion` of the pinned worker protocol.
pub const RPC_SET_VERSION: u64 = 1;

/// The pinned version's protocol features; the hello must list exactly these.
pub const PROTOCOL_FEATURES: [&str; 12] = [
    "skill-resources-v1",
    "worker-skill-workshop-v1",
    "worker-heartbeat-v1",
    "worker-transcript-commit-v1",
    "worker-live-event-v1",
    "worker-execution-context-v2",
    "worker-execution-authority-v1",
    "worker-lineage-start-v1",
    "worker-session-tools-v1",
    "worker-portal-v1",
    "worker-computer-v1",
    "worker-inference-v1",
];

/// The OpenClaw version whose worker ringgate drives.
pub const OPENCLAW_VERSION: &str = "2026.9.6";

/// How often the worker sends `worker.heartbeat`.
pub const HEARTBEAT_INTERVAL_MS: u64 = 15_000;

/// The methods a worker may call. Everything else is refused (`method-not-allowed`); the
/// feature-gated session, portal, computer and skill-workshop methods are not offered because
/// ringgate never grants those tools.
pub const METHODS: [&str; 5] = [
    "worker.heartbeat",
    "worker.transcript.commit",
    "worker.live-event",
    "worker.inference.start",
    "worker.inference.cancel",
];

/// An error in the worker's shape: `{code, message, details:{reason, …}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerError {
    pub code: &'static str,
    pub message: String,
    pub reason: &'static str,
    /// Extra `details` fields (`ackedSeq`/`expectedSeq` of a resync).
    pub extra: Option<Box<Value>>,
}

impl WorkerError {
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> WorkerError {
        WorkerError {
            code: "INVALID_REQUEST",
            message: message.into(),
            reason,
            extra: None,
        }
    }

    /// The `error` object of the response.
    pub fn to_value(&self) -> Value {
        let mut details = json!({"reason": self.reason});
        if let Some(Value::Object(extra)) = self.extra.as_deref() {
            for (k, v) in extra {
                details[k] = v.clone();
            }
        }
        // The worker bounds messages to 256 characters.
        let message: String = self.message.chars().take(256).collect();
        json!({"code": self.code, "message": message, "details": details})
    }
}

/// The worker's error as a response's `error` (same keys, message bounded).
impl From<WorkerError> for crate::proto::errors::ErrorShape {
    fn from(e: WorkerError) -> Self {
        let v = e.to_value();
        let message = v["message"].as_str().unwrap_or_default().to_owned();
        crate::proto::errors::ErrorShape::new(e.code, message).with_details(v["details"].clone())
    }
}

/// What a `connect` on the worker channel admits: the grant its credential carries and the
/// answer to send.
#[derive(Debug)]
pub struct Admitted {
    pub grant: Grant,
    pub hello: Value,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Checks a worker's `connect` params. `max_payload` is announced in the hello's policy.
pub fn admit(
    params: &Value,
    minter: &Minter,
    now_ms: u64,
    max_payload: usize,
) -> Result<Admitted, WorkerError> {
    let bad = |m: &str| WorkerError::invalid("invalid-handshake", m);
    if str_of(params, "role") != Some("worker") {
        return Err(bad("the worker channel admits role worker only"));
    }
    let a = params
        .get("admission")
        .filter(|a| a.is_object())
        .ok_or_else(|| bad("connect without admission"))?;
    let env = str_of(a, "environmentId").ok_or_else(|| bad("admission.environmentId"))?;
    let credential = str_of(a, "credential").ok_or_else(|| bad("admission.credential"))?;
    let epoch = a["ownerEpoch"]
        .as_u64()
        .ok_or_else(|| bad("admission.ownerEpoch"))?;
    let session_id = str_of(a, "sessionId").ok_or_else(|| bad("admission.sessionId"))?;
    if a["rpcSetVersion"].as_u64() != Some(RPC_SET_VERSION) {
        return Err(WorkerError::invalid(
            "rpc-set-mismatch",
            format!("ringgate speaks worker rpc set {RPC_SET_VERSION}"),
        ));
    }
    let features = a["handshake"]["protocolFeatures"]
        .as_array()
        .ok_or_else(|| bad("admission.handshake.protocolFeatures"))?;
    let same = features.len() == PROTOCOL_FEATURES.len()
        && features
            .iter()
            .all(|f| f.as_str().is_some_and(|f| PROTOCOL_FEATURES.contains(&f)));
    if !same {
        return Err(WorkerError::invalid(
            "protocol-features-mismatch",
            format!("ringgate drives the openclaw {OPENCLAW_VERSION} worker protocol"),
        ));
    }
    let grant = minter
        .verify(credential, env, epoch, now_ms)
        .map_err(|e| match e {
            Refused::Expired => WorkerError::invalid("credential-expired", e.to_string()),
            Refused::Mismatch => WorkerError::invalid("environment-mismatch", e.to_string()),
            Refused::Malformed | Refused::BadSignature => {
                WorkerError::invalid("invalid-credential", "worker credential rejected")
            }
        })?;
    if grant.session_id != session_id || str_of(a, "runId") != Some(grant.run_id.as_str()) {
        return Err(WorkerError::invalid(
            "session-mismatch",
            "the credential was minted for another session or run",
        ));
    }
    let hello = json!({
        "type": "worker-hello-ok",
        "environmentId": env,
        "sessionId": session_id,
        "ownerEpoch": epoch,
        "rpcSetVersion": RPC_SET_VERSION,
        "protocolFeatures": PROTOCOL_FEATURES,
        "credentialExpiresAtMs": grant.expires_at_ms,
        "policy": {"heartbeatIntervalMs": HEARTBEAT_INTERVAL_MS, "maxPayload": max_payload},
    });
    Ok(Admitted { grant, hello })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            owner_epoch: 2,
            expires_at_ms: 10_000,
            ..crate::worker::credential::test_grant()
        }
    }

    fn connect(credential: &str) -> Value {
        json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "openclaw-worker", "version": OPENCLAW_VERSION, "platform": "linux", "mode": "worker"},
            "role": "worker",
            "admission": {
                "environmentId": "env-1", "credential": credential, "ownerEpoch": 2, "rpcSetVersion": 1,
                "handshake": {"bundleHash": "0".repeat(64), "openclawVersion": OPENCLAW_VERSION,
                              "protocolFeatures": PROTOCOL_FEATURES},
                "sessionId": "sess-1", "runId": "run-1",
            },
        })
    }

    #[test]
    fn a_launched_worker_is_admitted_with_the_exact_hello() {
        let m = Minter::new([1; 32]);
        let a = admit(&connect(&m.mint(&grant())), &m, 5, 1 << 20).unwrap();
        assert_eq!(a.grant, grant());
        let keys: Vec<&str> = a
            .hello
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "type",
                "environmentId",
                "sessionId",
                "ownerEpoch",
                "rpcSetVersion",
                "protocolFeatures",
                "credentialExpiresAtMs",
                "policy"
            ]
        );
        assert_eq!(a.hello["ownerEpoch"], 2);
        assert_eq!(a.hello["protocolFeatures"].as_array().unwrap().len(), 12);
    }

    #[test]
    fn forged_stale_and_mismatched_admissions_are_refused_with_the_workers_reasons() {
        let m = Minter::new([1; 32]);
        let good = m.mint(&grant());
        let reason = |p: &Value, now: u64| admit(p, &m, now, 1).unwrap_err().reason;
        assert_eq!(
            reason(&connect("c".repeat(32).as_str()), 5),
            "invalid-credential"
        );
        let forged = Minter::new([2; 32]).mint(&grant());
        assert_eq!(reason(&connect(&forged), 5), "invalid-credential");
        assert_eq!(reason(&connect(&good), 10_000), "credential-expired");
        let mut p = connect(&good);
        p["admission"]["runId"] = json!("run-2");
        assert_eq!(reason(&p, 5), "session-mismatch");
        let mut p = connect(&good);
        p["admission"]["handshake"]["protocolFeatures"] = json!(["worker-inference-v1"]);
        assert_eq!(reason(&p, 5), "protocol-features-mismatch");
        let mut p = connect(&good);
        p["admission"]["rpcSetVersion"] = json!(2);
        assert_eq!(reason(&p, 5), "rpc-set-mismatch");
        let mut p = connect(&good);
        p["role"] = json!("operator");
        assert_eq!(reason(&p, 5), "invalid-handshake");
        assert_eq!(reason(&json!({"role": "worker"}), 5), "invalid-handshake");
    }

    #[test]
    fn errors_carry_the_reason_and_bounded_message() {
        let mut e = WorkerError::invalid("resync-required", "x".repeat(400));
        e.extra = Some(Box::new(json!({"ackedSeq": 3, "expectedSeq": 4})));
        let v = e.to_value();
        assert_eq!(
            v["details"],
            json!({"reason": "resync-required", "ackedSeq": 3, "expectedSeq": 4})
        );
        assert_eq!(v["message"].as_str().unwrap().len(), 256);
    }
}
