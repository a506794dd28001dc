//! `skills.status` and `skills.bins`: skills found in `<stateDir>/skills` and the configured
//! directories, with their requirement checks. The directory scan runs on the storage thread.

use std::path::PathBuf;

use super::{str_param, Call, Outcome};
use crate::{
    proto::errors::ErrorShape,
    shard::ctx::ShardCtx,
    skills::{source, SkillRoot, SkillsSettings},
    store::Op,
};

pub const METHODS: &[&str] = &["skills.status", "skills.bins"];

/// Where skills are looked for, from the live config.
pub fn settings(ctx: &ShardCtx) -> SkillsSettings {
    let c = &ctx.config;
    let mut s = SkillsSettings::new(&c.state_dir, c.state_dir.join("workspace"));
    s.roots = c
        .skills
        .dirs
        .iter()
        .map(|d: &PathBuf| SkillRoot::new(d.clone(), source::EXTRA))
        .collect();
    s.disabled = c.skills.disabled.iter().cloned().collect();
    s
}

pub fn handle(ctx: &mut ShardCtx, call: &Call) -> Outcome {
    let agent_id = match str_param(call.params, "agentId") {
        Some(a) if ctx.config.agent(a).is_none() => {
            return Outcome::Reply(Err(ErrorShape::invalid(format!(
                "unknown agent id \"{a}\""
            ))))
        }
        Some(a) => a.to_owned(),
        None => ctx.config.default_agent().to_owned(),
    };
    let op = Op::Skills {
        settings: Box::new(settings(ctx)),
        agent_id,
        bins: call.method == "skills.bins",
    };
    super::json_from_store(op)
}
