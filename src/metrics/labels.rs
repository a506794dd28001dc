//! The `method` label of the RPC families: a core method's canonical name, `other` for a
//! method outside the core table (ringgate's own, such as the worker channel's), `unknown`
//! for a name no handler knows. Indices, so a shard's per-method figures are a plain vector.

use crate::proto::{scope_table::CORE_METHODS, scopes};

/// Index of the `other` label.
pub const OTHER: usize = CORE_METHODS.len();
/// Index of the `unknown` label.
pub const UNKNOWN: usize = CORE_METHODS.len() + 1;

/// The label index of a method name (a core method's position in the table, else [`OTHER`]).
pub fn method_index(method: &str) -> usize {
    spec_index(scopes::spec(method))
}

/// The label index of a method's table entry (`None`: not a core method).
pub fn spec_index(spec: Option<&'static scopes::MethodSpec>) -> usize {
    match spec {
        // `spec` returns references into the `CORE_METHODS` static: the offset is the index.
        Some(s) => {
            let base = CORE_METHODS.as_ptr() as usize;
            let i = (s as *const scopes::MethodSpec as usize).wrapping_sub(base)
                / std::mem::size_of::<scopes::MethodSpec>();
            if i < CORE_METHODS.len() {
                i
            } else {
                OTHER
            }
        }
        None => OTHER,
    }
}

/// The label value of an index.
pub fn method_name(i: usize) -> &'static str {
    match CORE_METHODS.get(i) {
        Some(m) => m.name,
        None if i == OTHER => "other",
        None => "unknown",
    }
}

/// The connect refusal reasons a label may name: the original's `details.code` values that
/// ringgate's connect gate produces. Anything else is `other`.
const REFUSAL_CODES: &[&str] = &[
    "AUTH_TOKEN_MISSING",
    "AUTH_TOKEN_MISMATCH",
    "AUTH_TOKEN_NOT_CONFIGURED",
    "AUTH_PASSWORD_MISSING",
    "AUTH_PASSWORD_MISMATCH",
    "AUTH_PASSWORD_NOT_CONFIGURED",
    "AUTH_BOOTSTRAP_TOKEN_INVALID",
    "AUTH_RATE_LIMITED",
    "AUTH_DEVICE_TOKEN_MISMATCH",
    "AUTH_SCOPE_MISMATCH",
    "AUTH_REQUIRED",
    "AUTH_UNAUTHORIZED",
    "CONTROL_UI_DEVICE_IDENTITY_REQUIRED",
    "CONTROL_UI_ORIGIN_NOT_ALLOWED",
    "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    "DEVICE_AUTH_NONCE_MISMATCH",
    "DEVICE_AUTH_NONCE_REQUIRED",
    "DEVICE_AUTH_PUBLIC_KEY_INVALID",
    "DEVICE_AUTH_SIGNATURE_EXPIRED",
    "DEVICE_AUTH_SIGNATURE_INVALID",
    "DEVICE_IDENTITY_REQUIRED",
    "NOT_PAIRED",
    "PAIRING_REQUIRED",
    "PROTOCOL_MISMATCH",
    "INVALID_REQUEST",
    "AUTH_CHANGED",
    "UNAVAILABLE",
];

/// The `reason` label of a refused connect, from its error's `details.code`.
pub fn refusal(details_code: Option<&str>) -> &'static str {
    details_code
        .and_then(|c| REFUSAL_CODES.iter().find(|k| **k == c))
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_methods_map_to_their_own_names() {
        for (i, m) in CORE_METHODS.iter().enumerate() {
            assert_eq!(method_index(m.name), i);
            assert_eq!(method_name(i), m.name);
        }
        assert_eq!(method_name(method_index("worker.hello")), "other");
        assert_eq!(method_name(UNKNOWN), "unknown");
    }

    #[test]
    fn refusal_reasons_are_the_known_codes_or_other() {
        assert_eq!(refusal(Some("AUTH_TOKEN_MISMATCH")), "AUTH_TOKEN_MISMATCH");
        assert_eq!(refusal(Some("made up by a client")), "other");
        assert_eq!(refusal(None), "other");
    }
}
