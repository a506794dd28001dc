//! `cron.*`: every request goes to the cron owner shard ([`crate::cron::service`]), which
//! validates it against its job book and answers.

use super::{Call, Outcome, Routed};

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
    Outcome::routed(Routed::Cron {
        method: call.method.to_owned(),
        params: call.params.clone(),
    })
}
