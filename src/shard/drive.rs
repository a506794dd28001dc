//! The driver of the sans-IO owners ([`crate::effects`]): runs an owner's step with the shard's
//! clock and knowledge, then applies the effects it pushed — answers (local or over the bus),
//! broadcasts, store ops and timers — and feeds what comes back to the owner as its resume.

use crate::{
    approvals::{self, ApprovalCall},
    bus::BusMsg,
    channels::{
        sends::{self, Delivery, SendCall},
        DeliveryReport,
    },
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
            Effect::Answer(to, a) => to.answer(ctx, &a),
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
    ctx.route(owner, call, approval, BusMsg::Approval);
}

fn sends_env(ctx: &ShardCtx, call: Option<&SendCall>) -> sends::Env {
    sends::Env {
        now_ms: now_ms(),
        budget_ms: call.and_then(|c| {
            ctx.channels.channel(c.channel)?;
            Some(
                ctx.channels
                    .delivery_budget_ms(c.channel, c.msg.account_id.as_deref()),
            )
        }),
    }
}

/// Serves a `send` on the owner of its idempotency key.
pub fn send(ctx: &mut ShardCtx, call: SendCall) {
    let env = sends_env(ctx, Some(&call));
    let mut fx = Effects::default();
    if let Some(d) = ctx.sends.handle(&env, call, &mut fx) {
        deliver(ctx, d, &mut fx);
    }
    apply(ctx, fx, send_resume);
}

/// Hands a delivery to its channel, whose threads report the final outcome to this shard's
/// inbox ([`send_report`]).
fn deliver(ctx: &mut ShardCtx, mut d: Delivery, fx: &mut Effects<sends::Resume>) {
    let bus = ctx.sender.bus().clone();
    let (me, key) = (ctx.id, d.key.clone());
    let report = Box::new(move |report: DeliveryReport| {
        let mut m = BusMsg::ChannelReport(Box::new((key, report)));
        // The delivery thread waits for room rather than lose an outcome.
        while let Err(back) = bus.inbox(me).push(m) {
            m = back;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    });
    let sent = match ctx.channels.channel(d.channel) {
        Some(ch) => ch
            .send(std::mem::take(&mut d.msg), report)
            .map_err(|e| sends::refusal(&e)),
        None => Err(crate::proto::errors::ErrorShape::invalid(format!(
            "unsupported channel: {}",
            d.channel
        ))),
    };
    match sent {
        Ok(_) => ctx.sends.queued(&d, fx),
        Err(e) => ctx.sends.refused(&d, e, fx),
    }
}

/// A delivery's final outcome, on the owner shard.
pub fn send_report(ctx: &mut ShardCtx, key: String, report: DeliveryReport) {
    let env = sends_env(ctx, None);
    let mut fx = Effects::default();
    ctx.sends.report(&env, key, report, &mut fx);
    apply(ctx, fx, send_resume);
}

fn send_resume(ctx: &mut ShardCtx, r: sends::Resume, _: Option<OpResult>) {
    let mut fx = Effects::default();
    ctx.sends.resume(r, &mut fx);
    apply(ctx, fx, send_resume);
}
