//! `config.*`: reads and writes go to the storage thread (the one writer of the config file);
//! the schema answers come from [`crate::config_schema`] on the shard.

use serde_json::Value;

use super::{str_param, Call, Deferred, Outcome};
use crate::{
    proto::errors::{code, ErrorShape},
    shard::ctx::ShardCtx,
    store::{
        config::{ConfigOp, WriteMode},
        Op, OpResult,
    },
};

pub const METHODS: &[&str] = &[
    "config.get",
    "config.set",
    "config.patch",
    "config.apply",
    "config.schema",
    "config.schema.lookup",
];

pub fn handle(_ctx: &mut ShardCtx, call: &Call) -> Outcome {
    let p = call.params;
    let op = match call.method {
        "config.schema" => return Outcome::Reply(Ok(crate::config_schema::response())),
        "config.schema.lookup" => {
            let path = str_param(p, "path").unwrap_or_default();
            return Outcome::Reply(
                crate::config_schema::lookup(path)
                    .ok_or_else(|| ErrorShape::invalid("config schema path not found")),
            );
        }
        "config.get" => ConfigOp::Get,
        m => {
            let mode = match m {
                "config.set" => WriteMode::Set,
                "config.patch" => WriteMode::Patch,
                _ => WriteMode::Apply,
            };
            let Some(raw) = str_param(p, "raw") else {
                return Outcome::Reply(Err(ErrorShape::invalid(format!(
                    "invalid {m} params: raw (string) required"
                ))));
            };
            ConfigOp::Write {
                mode,
                raw: raw.to_owned(),
                base_hash: str_param(p, "baseHash").map(str::to_owned),
                replace_paths: p
                    .get("replacePaths")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }
    };
    Outcome::Deferred(Box::new(Deferred {
        op: Op::Config(op),
        finish: Box::new(|r, _| match r {
            OpResult::Json(v) => Ok(v),
            OpResult::Invalid(m) => Err(ErrorShape::invalid(m)),
            OpResult::Failed(m) => Err(ErrorShape::new(code::UNAVAILABLE, m)),
            other => Err(ErrorShape::new(
                code::UNAVAILABLE,
                format!("config store answered {other:?}"),
            )),
        }),
    }))
}
