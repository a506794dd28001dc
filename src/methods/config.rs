//! `config.*`: reads and writes go to the storage thread (the one writer of the config file);
//! the schema answers come from [`crate::config_schema`] on the shard.

use super::{str_list_param, str_param, Call, Outcome};
use crate::{
    proto::errors::ErrorShape,
    shard::ctx::ShardCtx,
    store::{
        config::{ConfigOp, WriteMode},
        Op,
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
                replace_paths: str_list_param(p, "replacePaths").unwrap_or_default(),
            }
        }
    };
    super::json_from_store(Op::Config(op))
}
