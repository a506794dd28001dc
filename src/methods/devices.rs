//! Device pairing RPCs (protocol §7.9): `device.pair.list|approve|reject|remove|rename`,
//! `device.token.rotate|revoke`. Every change goes through the storage thread and is answered
//! only once durable; the replicas and the `device.pair.*` events follow from the store.

use serde_json::{json, Value};

use super::{Call, Deferred, Outcome};
use crate::{
    proto::{errors::ErrorShape, scopes::Scope},
    shard::ctx::ShardCtx,
    store::{Op, OpResult},
};

fn str_param(call: &Call, k: &str) -> String {
    call.params
        .get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Maps store failures to the wire.
fn common(r: OpResult) -> Result<Value, ErrorShape> {
    match r {
        OpResult::Invalid(m) => Err(ErrorShape::invalid(m)),
        OpResult::Failed(m) => Err(ErrorShape::new(crate::proto::errors::code::UNAVAILABLE, m)),
        other => Err(ErrorShape::new(
            crate::proto::errors::code::UNAVAILABLE,
            format!("unexpected store result: {other:?}"),
        )),
    }
}

/// For a non-admin device-token session, the one device it may act on.
fn own_device(call: &Call) -> Option<String> {
    let s = call.session;
    (!s.scopes.has(Scope::Admin) && s.auth_method == "device-token")
        .then(|| s.device_id.clone().unwrap_or_default())
}

/// Non-admin sessions authenticated by a device token may only manage their own device.
fn own_device_only(call: &Call, target: &str) -> bool {
    let s = call.session;
    !s.scopes.has(Scope::Admin)
        && s.auth_method == "device-token"
        && s.device_id.as_deref() != Some(target)
}

pub fn handle(_ctx: &mut ShardCtx, call: &Call) -> Outcome {
    let admin = call.session.scopes.has(Scope::Admin);
    match call.method {
        "device.pair.list" => {
            let own = (!admin && call.session.auth_method == "device-token")
                .then(|| call.session.device_id.clone())
                .flatten();
            Outcome::Deferred(Box::new(Deferred {
                op: Op::List,
                finish: Box::new(move |r, ctx| match r {
                    OpResult::List { pending, paired } => {
                        let keep = |id: &str| own.as_deref().is_none_or(|o| o == id);
                        let pending: Vec<Value> = pending
                            .iter()
                            .filter(|p| keep(&p.device_id))
                            .map(crate::store::pending_json)
                            .collect();
                        let paired: Vec<Value> = paired
                            .iter()
                            .filter(|d| keep(&d.device_id))
                            .map(|d| d.redacted(Some(ctx.device_connected(&d.device_id))))
                            .collect();
                        Ok(json!({"pending": pending, "paired": paired}))
                    }
                    other => common(other),
                }),
            }))
        }
        "device.pair.approve" => Outcome::Deferred(Box::new(Deferred {
            op: Op::Approve {
                request_id: str_param(call, "requestId"),
                caller: call.session.scopes.clone(),
                own_device: own_device(call),
            },
            finish: Box::new(|r, _| match r {
                OpResult::Approved {
                    request_id, device, ..
                } => Ok(json!({"requestId": request_id, "device": device.redacted(None)})),
                other => common(other),
            }),
        })),
        "device.pair.reject" => Outcome::Deferred(Box::new(Deferred {
            op: Op::Reject {
                request_id: str_param(call, "requestId"),
                own_device: own_device(call),
            },
            finish: Box::new(|r, _| match r {
                OpResult::Rejected {
                    request_id,
                    device_id,
                } => Ok(json!({"requestId": request_id, "deviceId": device_id})),
                other => common(other),
            }),
        })),
        "device.pair.remove" => {
            let device_id = str_param(call, "deviceId");
            if own_device_only(call, &device_id) {
                return Outcome::Reply(Err(ErrorShape::invalid("device pairing removal denied")));
            }
            Outcome::Deferred(Box::new(Deferred {
                op: Op::Remove { device_id },
                finish: Box::new(|r, _| match r {
                    OpResult::Removed {
                        device_id,
                        removed_at_ms,
                    } => Ok(json!({"deviceId": device_id, "removedAtMs": removed_at_ms})),
                    other => common(other),
                }),
            }))
        }
        "device.pair.rename" => {
            let device_id = str_param(call, "deviceId");
            let label = str_param(call, "label");
            if label.is_empty() {
                return Outcome::Reply(Err(ErrorShape::invalid("label required")));
            }
            if own_device_only(call, &device_id) {
                return Outcome::Reply(Err(ErrorShape::invalid("device pairing rename denied")));
            }
            Outcome::Deferred(Box::new(Deferred {
                op: Op::Rename { device_id, label },
                finish: Box::new(|r, _| match r {
                    OpResult::Renamed { device_id, label } => {
                        Ok(json!({"deviceId": device_id, "label": label}))
                    }
                    other => common(other),
                }),
            }))
        }
        "device.token.rotate" | "device.token.revoke" => {
            let rotate = call.method == "device.token.rotate";
            let denied = if rotate {
                "device token rotation denied"
            } else {
                "device token revocation denied"
            };
            let device_id = str_param(call, "deviceId");
            let role = str_param(call, "role");
            if (role != "operator" && !admin) || own_device_only(call, &device_id) {
                return Outcome::Reply(Err(ErrorShape::invalid(denied)));
            }
            if !rotate {
                return Outcome::Deferred(Box::new(Deferred {
                    op: Op::Revoke {
                        device_id,
                        role,
                        caller: call.session.scopes.clone(),
                    },
                    finish: Box::new(|r, _| match r {
                        OpResult::Revoked {
                            device_id,
                            role,
                            revoked_at_ms,
                        } => Ok(
                            json!({"deviceId": device_id, "role": role, "revokedAtMs": revoked_at_ms}),
                        ),
                        other => common(other),
                    }),
                }));
            }
            let scopes = super::str_list_param(call.params, "scopes");
            // The new token goes back in-band only to the device itself, authenticated by
            // its device token (so a token-only client can keep its credential), as on the
            // original; anyone else gets it withheld.
            let same_device = call.session.auth_method == "device-token"
                && call.session.device_id.as_deref() == Some(device_id.as_str());
            let dev = device_id.clone();
            Outcome::Deferred(Box::new(Deferred {
                op: Op::Rotate {
                    device_id,
                    role,
                    scopes,
                    caller: call.session.scopes.clone(),
                },
                finish: Box::new(move |r, _| match r {
                    OpResult::Token(t) => {
                        let mut v = json!({"deviceId": dev, "role": t.role, "scopes": t.scopes,
                            "rotatedAtMs": t.rotated_at_ms.unwrap_or(t.created_at_ms),
                            "tokenDelivery": if same_device { "in-band" } else { "withheld-cross-device" }});
                        if same_device {
                            v["token"] = json!(t.token);
                        }
                        Ok(v)
                    }
                    other => common(other),
                }),
            }))
        }
        _ => unreachable!("dispatch only routes device methods here"),
    }
}
