//! `deltaCursor` of `chat.history` / `chat.startup`: where a client's copy of a transcript
//! ends, so its next `chat.history {cursor}` gets only what came after (`kind:"delta"`), or
//! `kind:"reset"` when the transcript changed under it (reset, deleted). Opaque to clients;
//! base64 of `{agentId, generation, lastSeq, sessionId, version}` like the original's.

use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    Engine,
};
use serde_json::{json, Value};

/// Bumped if the cursor's meaning changes: older cursors then reset.
const GENERATION: &str = "ringgate-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub agent_id: String,
    pub session_id: String,
    pub last_seq: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let v = json!({"agentId": self.agent_id, "generation": GENERATION,
                       "lastSeq": self.last_seq, "sessionId": self.session_id, "version": 1});
        STANDARD_NO_PAD.encode(v.to_string())
    }

    /// `None` for anything that is not a cursor of this gateway (the caller resets).
    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 4096 {
            return None;
        }
        let bytes = [&STANDARD_NO_PAD, &STANDARD, &URL_SAFE_NO_PAD, &URL_SAFE]
            .iter()
            .find_map(|e| e.decode(s.trim()).ok())?;
        let v: Value = serde_json::from_slice(&bytes).ok()?;
        if v["generation"] != GENERATION || v["version"] != 1 {
            return None;
        }
        Some(Cursor {
            agent_id: v["agentId"].as_str()?.to_owned(),
            session_id: v["sessionId"].as_str()?.to_owned(),
            last_seq: v["lastSeq"].as_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_cursors() {
        let c = Cursor {
            agent_id: "main".into(),
            session_id: "s-1".into(),
            last_seq: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        // The original's cursors (another generation), junk and huge input are not ours.
        let theirs = "eyJhZ2VudElkIjoibWFpbiIsImdlbmVyYXRpb24iOiJmNjg2NWQ5YzRjMzU0ZTA2OTUwOTg4ZTBhOTkyYTQ5MyIsImxhc3RTZXEiOjIsInNlc3Npb25JZCI6IjFiZjIxNDRiLTI5NzItNDJkNS1hOWM4LWI2NmUyYmIwM2E1NSIsInZlcnNpb24iOjF9";
        assert_eq!(Cursor::decode(theirs), None);
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode(&"A".repeat(10_000)), None);
    }
}
