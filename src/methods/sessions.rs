//! `sessions.subscribe` (protocol §7.3): registers the connection for `sessions.changed`. The
//! flag lives on the connection's session (set by the shard after this reply). Sessions
//! themselves (chat, agent runs, transcripts) are not built yet, so there is nothing to
//! announce yet.

use serde_json::json;

use super::{Call, Reply};

pub fn handle(call: &Call) -> Reply {
    debug_assert_eq!(call.method, "sessions.subscribe");
    Ok(json!({"subscribed": true}))
}
