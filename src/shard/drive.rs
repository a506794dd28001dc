//! The driver of the sans-IO owners ([`crate::effects`]): runs an owner's step with the shard's
//! clock and knowledge, then applies the effects it pushed — answers (local or over the bus),
//! broadcasts, store ops and timers — and feeds what comes back to the owner as its resume.

use crate::{
    approvals::{self, ApprovalCall},
    effects::{Effect, Effects},
    proto::frame,
    state::now_ms,
    store::OpResult,
};

use super::ctx::ShardCtx;

/// Applies effects in order; `resume` takes what a store op or timer brings back.
fn apply<R: 'static>(
    ctx: &mut ShardCtx,
    fx: Effects<R>,
    resume: fn(&mut ShardCtx, R, Option<OpResult>),
) {
    for e in fx.0 {
        match e {
            Effect::Reply(to, Ok(v)) => ctx.reply(to.shard, to.conn, frame::res_ok(&to.req_id, &v)),
            Effect::Reply(to, Err(e)) => {
                ctx.reply(to.shard, to.conn, frame::res_err(&to.req_id, &e))
            }
            Effect::Broadcast(ev) => ctx.broadcast(ev),
            Effect::Submit(op) => ctx.store.submit(op),
            Effect::Store(op, r) => ctx.spawn_store(op, move |ctx, res| resume(ctx, r, Some(res))),
            Effect::Timer(ms, r) => {
                let me = ctx.me.clone();
                monoio::spawn(async move {
                    super::timer::sleep_ms(ms).await;
                    if let Some(ctx) = me.upgrade() {
                        resume(&mut ctx.borrow_mut(), r, None);
                    }
                });
            }
        }
    }
}

fn approvals_env(ctx: &ShardCtx) -> approvals::Env {
    approvals::Env {
        now_ms: now_ms(),
        routed: ctx.globals.approval_clients() > 0,
    }
}

/// Serves an approval call on the approvals owner.
pub fn approval(ctx: &mut ShardCtx, call: ApprovalCall) {
    let env = approvals_env(ctx);
    let mut fx = Effects::default();
    ctx.approvals.handle(&env, call, &mut fx);
    apply(ctx, fx, approval_resume);
}

fn approval_resume(ctx: &mut ShardCtx, r: approvals::Resume, res: Option<OpResult>) {
    let env = approvals_env(ctx);
    let mut fx = Effects::default();
    ctx.approvals.resume(&env, r, res, &mut fx);
    apply(ctx, fx, approval_resume);
}

/// Sends an approval call to the approvals owner (or serves it here).
pub fn route_approval(ctx: &mut ShardCtx, call: ApprovalCall) {
    let owner = ctx.placement().approvals();
    ctx.route(owner, call, approval, crate::bus::BusMsg::Approval);
}
