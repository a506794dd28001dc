//! The credential ringgate mints for one worker launch. A worker presents it in its `connect`
//! on `/__openclaw__/worker`; whichever shard accepted the socket must be able to check it
//! without asking anyone, so it is self-contained: the launch's identity (session, run,
//! environment, owner epoch, expiry) in base64url JSON, then an HMAC-SHA256 of that text under
//! a key drawn at start and never written anywhere. A gateway restart therefore revokes every
//! credential, as it ends every turn. The session's owner still checks, on every worker call,
//! that the run is the session's active run under that epoch (a credential of a finished run
//! is refused there).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest credential accepted (a real one is about 250 bytes).
pub const MAX_CREDENTIAL: usize = 2048;

/// What a credential says about its launch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The session's key (routes the worker's calls to the session's owner shard).
    #[serde(rename = "k")]
    pub session_key: String,
    /// The transcript's session id (the worker's `sessionId`).
    #[serde(rename = "s")]
    pub session_id: String,
    #[serde(rename = "r")]
    pub run_id: String,
    #[serde(rename = "e")]
    pub environment_id: String,
    #[serde(rename = "o")]
    pub owner_epoch: u64,
    #[serde(rename = "x")]
    pub expires_at_ms: u64,
}

/// Why a credential was refused (logged; the worker gets one generic message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("malformed credential")]
    Malformed,
    #[error("credential signature does not verify")]
    BadSignature,
    #[error("credential expired")]
    Expired,
    #[error("credential was minted for another environment or owner epoch")]
    Mismatch,
}

/// Mints and checks credentials under one process-wide key.
#[derive(Clone)]
pub struct Minter {
    key: [u8; 32],
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Minter(..)")
    }
}

impl Minter {
    pub fn new(key: [u8; 32]) -> Minter {
        Minter { key }
    }

    /// A minter with a fresh random key.
    pub fn random() -> Minter {
        Minter::new(rand::random())
    }

    fn mac(&self, text: &str) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(text.as_bytes());
        m
    }

    pub fn mint(&self, g: &Grant) -> String {
        let body = B64.encode(serde_json::to_vec(g).expect("a grant serializes"));
        let sig = B64.encode(self.mac(&body).finalize().into_bytes());
        format!("{body}.{sig}")
    }

    /// Checks a presented credential against the admission fields sent beside it.
    pub fn verify(
        &self,
        credential: &str,
        environment_id: &str,
        owner_epoch: u64,
        now_ms: u64,
    ) -> Result<Grant, Refused> {
        if credential.len() > MAX_CREDENTIAL {
            return Err(Refused::Malformed);
        }
        let (body, sig) = credential.rsplit_once('.').ok_or(Refused::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| Refused::Malformed)?;
        // Constant-time comparison.
        self.mac(body)
            .verify_slice(&sig)
            .map_err(|_| Refused::BadSignature)?;
        let bytes = B64.decode(body).map_err(|_| Refused::Malformed)?;
        let g: Grant = serde_json::from_slice(&bytes).map_err(|_| Refused::Malformed)?;
        if now_ms >= g.expires_at_ms {
            return Err(Refused::Expired);
        }
        if g.environment_id != environment_id || g.owner_epoch != owner_epoch {
            return Err(Refused::Mismatch);
        }
        Ok(g)
    }
}

/// The grant unit tests of the worker modules use.
#[cfg(test)]
pub fn test_grant() -> Grant {
    Grant {
        session_key: "agent:main:main".into(),
        session_id: "sess-1".into(),
        run_id: "run-1".into(),
        environment_id: "env-1".into(),
        owner_epoch: 3,
        expires_at_ms: 1_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        test_grant()
    }

    #[test]
    fn a_minted_credential_verifies_with_its_admission_fields() {
        let m = Minter::new([7; 32]);
        let c = m.mint(&grant());
        assert_eq!(m.verify(&c, "env-1", 3, 999), Ok(grant()));
        assert_eq!(m.verify(&c, "env-1", 3, 1_000), Err(Refused::Expired));
        assert_eq!(m.verify(&c, "env-2", 3, 1), Err(Refused::Mismatch));
        assert_eq!(m.verify(&c, "env-1", 4, 1), Err(Refused::Mismatch));
    }

    #[test]
    fn forged_or_foreign_credentials_are_refused() {
        let m = Minter::new([7; 32]);
        let c = m.mint(&grant());
        // Another gateway's key (or a restart).
        assert_eq!(
            Minter::new([8; 32]).verify(&c, "env-1", 3, 1),
            Err(Refused::BadSignature)
        );
        // A body edited to another run keeps the old signature.
        let (_, sig) = c.rsplit_once('.').unwrap();
        let mut g = grant();
        g.run_id = "run-2".into();
        let body = B64.encode(serde_json::to_vec(&g).unwrap());
        assert_eq!(
            m.verify(&format!("{body}.{sig}"), "env-1", 3, 1),
            Err(Refused::BadSignature)
        );
        for junk in ["", ".", "abc", "a.b", &"x".repeat(MAX_CREDENTIAL + 1)] {
            assert!(m.verify(junk, "env-1", 3, 1).is_err(), "{junk:?}");
        }
    }
}
