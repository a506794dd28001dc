//! Shared-secret authentication (protocol §3.1): token / password / none, compared in constant
//! time, with the original's failure reasons.

use std::borrow::Cow;

use subtle::ConstantTimeEq;

/// `gateway.auth.mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Every connect passes the shared-secret step (`method: "none"`).
    None,
    /// `auth.token` (falls back to `auth.password`) must equal the configured token.
    Token(String),
    /// `auth.password` (falls back to `auth.token`) must equal the configured password.
    Password(String),
    /// An identity-aware reverse proxy names the user ([`super::trusted_proxy`]).
    TrustedProxy(Box<super::trusted_proxy::TrustedProxyAuth>),
}

impl AuthMode {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Token(_) => "token",
            AuthMode::Password(_) => "password",
            AuthMode::TrustedProxy(_) => "trusted-proxy",
        }
    }
}

/// Outcome of the shared-secret step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretCheck {
    /// Passed; the value is `hello-ok.auth.method`.
    Ok(&'static str),
    /// Failed with this `authReason` (a trusted proxy's missing header is named in it).
    Failed(Cow<'static, str>),
}

fn failed(reason: &'static str) -> SecretCheck {
    SecretCheck::Failed(Cow::Borrowed(reason))
}

/// Constant-time equality over UTF-8 bytes; lengths must match (`safeEqualSecret`). The length
/// comparison leaks only the length, as in the original.
pub fn secret_eq(expected: &str, given: &str) -> bool {
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Evaluates the shared secret of a connect. `token`/`password` are the wire fields.
pub fn check(mode: &AuthMode, token: Option<&str>, password: Option<&str>) -> SecretCheck {
    match mode {
        AuthMode::None => SecretCheck::Ok("none"),
        // The proxy's identity is read from the request, not from the connect frame: the
        // handshake decides with what the upgrade carried.
        AuthMode::TrustedProxy(_) => failed("trusted_proxy_no_request"),
        AuthMode::Token(expected) => {
            if expected.is_empty() {
                return failed("token_missing_config");
            }
            match token.or(password) {
                None | Some("") => failed("token_missing"),
                Some(t) if secret_eq(expected, t) => SecretCheck::Ok("token"),
                Some(_) => failed("token_mismatch"),
            }
        }
        AuthMode::Password(expected) => {
            if expected.is_empty() {
                return failed("password_missing_config");
            }
            match password.or(token) {
                None | Some("") => failed("password_missing"),
                Some(p) if secret_eq(expected, p) => SecretCheck::Ok("password"),
                Some(_) => failed("password_mismatch"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_mode() {
        let m = AuthMode::Token("abc".into());
        assert_eq!(check(&m, Some("abc"), None), SecretCheck::Ok("token"));
        assert_eq!(check(&m, None, Some("abc")), SecretCheck::Ok("token"));
        assert_eq!(
            check(&m, Some("abd"), None),
            SecretCheck::Failed("token_mismatch".into())
        );
        assert_eq!(
            check(&m, Some("ab"), None),
            SecretCheck::Failed("token_mismatch".into())
        );
        assert_eq!(
            check(&m, None, None),
            SecretCheck::Failed("token_missing".into())
        );
        assert_eq!(
            check(&AuthMode::Token(String::new()), Some("x"), None),
            SecretCheck::Failed("token_missing_config".into())
        );
    }

    #[test]
    fn password_mode_and_none() {
        let m = AuthMode::Password("pw".into());
        assert_eq!(check(&m, None, Some("pw")), SecretCheck::Ok("password"));
        assert_eq!(check(&m, Some("pw"), None), SecretCheck::Ok("password"));
        assert_eq!(
            check(&m, None, Some("nope")),
            SecretCheck::Failed("password_mismatch".into())
        );
        assert_eq!(
            check(&m, None, None),
            SecretCheck::Failed("password_missing".into())
        );
        assert_eq!(check(&AuthMode::None, None, None), SecretCheck::Ok("none"));
    }
}
