//! `cron.*`: every request goes to the cron owner shard ([`crate::cron::service`]), which
//! validates it against its job book and answers.

use super::{Call, Outcome, Task};
use crate::{chat::Caller, cron::service::CronCall, shard::ctx::ShardCtx};

pub const METHODS: &[&str] = &[
    "cron.list",
    "cron.status",
    "cron.add",
    "cron.update",
    "cron.remove",
    "cron.run",
    "cron.runs",
];

pub fn handle(call: &Call) -> Outcome {
    let method = call.method.to_owned();
    let params = call.params.clone();
    Outcome::Task(Task(Box::new(move |ctx: &mut ShardCtx, caller: Caller| {
        crate::shard::drive::route_cron(
            ctx,
            CronCall {
                caller,
                method,
                params,
            },
        )
    })))
}
