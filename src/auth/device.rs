//! Device identity proof (protocol §3.3): the device id is the hex SHA-256 of the raw Ed25519
//! public key, and the signature covers the v3 (else v2) payload string bound to this
//! connection's challenge nonce. Pure: time and nonce are passed in.

use base64::{
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
    Engine,
};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// `DEVICE_SIGNATURE_SKEW_MS`.
pub const SIGNATURE_SKEW_MS: u64 = 120_000;

/// The `device` object of connect params.
#[derive(Debug, Clone)]
pub struct DeviceProof<'a> {
    pub id: &'a str,
    pub public_key: &'a str,
    pub signature: &'a str,
    pub signed_at: u64,
    pub nonce: &'a str,
}

/// The connect fields the signature covers.
#[derive(Debug, Clone)]
pub struct SignedFields<'a> {
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    /// `scopes` as sent, in order.
    pub scopes: &'a [&'a str],
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub token: &'a str,
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

/// A verified device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    pub device_id: String,
    pub public_key: [u8; 32],
    /// 3 or 2.
    pub payload_version: u8,
}

/// A failed proof: `INVALID_REQUEST <message>` with `details {code, reason}`, close 1008.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofError {
    pub message: &'static str,
    pub code: &'static str,
    pub reason: &'static str,
}

const ID_MISMATCH: ProofError = ProofError {
    message: "device identity mismatch",
    code: "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    reason: "device-id-mismatch",
};
const EXPIRED: ProofError = ProofError {
    message: "device signature expired",
    code: "DEVICE_AUTH_SIGNATURE_EXPIRED",
    reason: "device-signature-stale",
};
const NONCE_REQUIRED: ProofError = ProofError {
    message: "device nonce required",
    code: "DEVICE_AUTH_NONCE_REQUIRED",
    reason: "device-nonce-missing",
};
const NONCE_MISMATCH: ProofError = ProofError {
    message: "device nonce mismatch",
    code: "DEVICE_AUTH_NONCE_MISMATCH",
    reason: "device-nonce-mismatch",
};
const SIGNATURE_INVALID: ProofError = ProofError {
    message: "device signature invalid",
    code: "DEVICE_AUTH_SIGNATURE_INVALID",
    reason: "device-signature",
};
const PUBLIC_KEY_INVALID: ProofError = ProofError {
    message: "device public key invalid",
    code: "DEVICE_AUTH_PUBLIC_KEY_INVALID",
    reason: "device-public-key",
};

/// Decodes base64url or standard base64, padded or not.
pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| STANDARD.decode(s))
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .ok()
}

/// Raw key bytes from the wire form: raw base64(url), or an SPKI PEM.
pub fn decode_public_key(s: &str) -> Option<[u8; 32]> {
    const SPKI_PREFIX: [u8; 12] = [
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let bytes = if s.contains("-----BEGIN PUBLIC KEY-----") {
        let body: String = s.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = decode_b64(&body)?;
        der.strip_prefix(&SPKI_PREFIX[..])?.to_vec()
    } else {
        decode_b64(s)?
    };
    bytes.try_into().ok()
}

/// Lowercase hex SHA-256 of the raw public key.
pub fn device_id(raw_public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(raw_public_key);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Trim, ASCII A–Z → a–z only.
fn normalize_meta(s: Option<&str>) -> String {
    s.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default()
}

/// The signed payload string of a version (3 or 2).
pub fn payload(version: u8, d: &DeviceProof, f: &SignedFields) -> String {
    let mut s = format!(
        "v{version}|{}|{}|{}|{}|{}|{}|{}|{}",
        d.id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        d.signed_at,
        f.token,
        d.nonce
    );
    if version == 3 {
        s.push('|');
        s.push_str(&normalize_meta(f.platform));
        s.push('|');
        s.push_str(&normalize_meta(f.device_family));
    }
    s
}

/// Verifies a device proof in the original's order (id, skew, nonce, signature, key).
pub fn verify(
    d: &DeviceProof,
    f: &SignedFields,
    challenge_nonce: &str,
    now_ms: u64,
) -> Result<VerifiedDevice, ProofError> {
    let raw = decode_public_key(d.public_key).ok_or(ID_MISMATCH)?;
    if device_id(&raw) != d.id {
        return Err(ID_MISMATCH);
    }
    if now_ms.abs_diff(d.signed_at) > SIGNATURE_SKEW_MS {
        return Err(EXPIRED);
    }
    if d.nonce.trim().is_empty() {
        return Err(NONCE_REQUIRED);
    }
    if d.nonce != challenge_nonce {
        return Err(NONCE_MISMATCH);
    }
    let sig_bytes = decode_b64(d.signature).ok_or(SIGNATURE_INVALID)?;
    let sig = Signature::from_slice(&sig_bytes).map_err(|_| SIGNATURE_INVALID)?;
    let key = VerifyingKey::from_bytes(&raw).map_err(|_| PUBLIC_KEY_INVALID)?;
    for version in [3u8, 2] {
        let msg = payload(version, d, f);
        if key.verify_strict(msg.as_bytes(), &sig).is_ok() {
            return Ok(VerifiedDevice {
                device_id: d.id.to_owned(),
                public_key: raw,
                payload_version: version,
            });
        }
    }
    Err(SIGNATURE_INVALID)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    struct Fixture {
        key: SigningKey,
        id: String,
        pk: String,
    }

    fn fixture() -> Fixture {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let raw = key.verifying_key().to_bytes();
        Fixture {
            id: device_id(&raw),
            pk: URL_SAFE_NO_PAD.encode(raw),
            key,
        }
    }

    fn fields<'a>(scopes: &'a [&'a str]) -> SignedFields<'a> {
        SignedFields {
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes,
            token: "tok",
            platform: Some(" Linux "),
            device_family: None,
        }
    }

    fn signed(fx: &Fixture, version: u8, nonce: &str, at: u64) -> String {
        let scopes = ["operator.admin", "operator.read"];
        let tmp_sig = String::new();
        let d = DeviceProof {
            id: &fx.id,
            public_key: &fx.pk,
            signature: &tmp_sig,
            signed_at: at,
            nonce,
        };
        let msg = payload(version, &d, &fields(&scopes));
        URL_SAFE_NO_PAD.encode(fx.key.sign(msg.as_bytes()).to_bytes())
    }

    #[test]
    fn v3_payload_string_is_exact() {
        let fx = fixture();
        let d = DeviceProof {
            id: &fx.id,
            public_key: &fx.pk,
            signature: "",
            signed_at: 5,
            nonce: "n",
        };
        let scopes = ["operator.admin", "operator.read"];
        assert_eq!(
            payload(3, &d, &fields(&scopes)),
            format!(
                "v3|{}|cli|cli|operator|operator.admin,operator.read|5|tok|n|linux|",
                fx.id
            )
        );
    }

    #[test]
    fn accepts_v3_and_v2() {
        let fx = fixture();
        let scopes = ["operator.admin", "operator.read"];
        for v in [3, 2] {
            let sig = signed(&fx, v, "nonce-1", 1_000_000);
            let d = DeviceProof {
                id: &fx.id,
                public_key: &fx.pk,
                signature: &sig,
                signed_at: 1_000_000,
                nonce: "nonce-1",
            };
            let ok = verify(&d, &fields(&scopes), "nonce-1", 1_050_000).unwrap();
            assert_eq!(ok.payload_version, v);
        }
    }

    #[test]
    fn each_failure_has_its_code() {
        let fx = fixture();
        let scopes = ["operator.admin", "operator.read"];
        let sig = signed(&fx, 3, "nonce-1", 1_000_000);
        let good = DeviceProof {
            id: &fx.id,
            public_key: &fx.pk,
            signature: &sig,
            signed_at: 1_000_000,
            nonce: "nonce-1",
        };
        let f = fields(&scopes);
        let other_id = "0".repeat(64);
        let err =
            |d: &DeviceProof, nonce: &str, now: u64| verify(d, &f, nonce, now).unwrap_err().code;
        assert_eq!(
            err(
                &DeviceProof {
                    id: &other_id,
                    ..good.clone()
                },
                "nonce-1",
                1_000_000
            ),
            "DEVICE_AUTH_DEVICE_ID_MISMATCH"
        );
        assert_eq!(
            err(&good, "nonce-1", 1_000_000 + 120_001),
            "DEVICE_AUTH_SIGNATURE_EXPIRED"
        );
        assert_eq!(
            err(
                &DeviceProof {
                    nonce: " ",
                    ..good.clone()
                },
                "nonce-1",
                1_000_000
            ),
            "DEVICE_AUTH_NONCE_REQUIRED"
        );
        assert_eq!(
            err(&good, "nonce-2", 1_000_000),
            "DEVICE_AUTH_NONCE_MISMATCH"
        );
        let forged = signed(&fx, 3, "nonce-1", 999);
        assert_eq!(
            err(
                &DeviceProof {
                    signature: &forged,
                    ..good.clone()
                },
                "nonce-1",
                1_000_000
            ),
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
        // Scopes are signed as sent: reordering breaks the signature.
        let reordered = ["operator.read", "operator.admin"];
        assert_eq!(
            verify(&good, &fields(&reordered), "nonce-1", 1_000_000)
                .unwrap_err()
                .code,
            "DEVICE_AUTH_SIGNATURE_INVALID"
        );
    }

    #[test]
    fn pem_and_standard_base64_keys() {
        let fx = fixture();
        let raw = fx.key.verifying_key().to_bytes();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(decode_public_key(&pem), Some(raw));
        assert_eq!(decode_public_key(&STANDARD.encode(raw)), Some(raw));
    }
}
