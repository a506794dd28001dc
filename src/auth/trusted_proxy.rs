//! `gateway.auth.mode: "trusted-proxy"`: an identity-aware reverse proxy (oauth2-proxy,
//! Pomerium, Cloudflare Access, …) authenticates users and names them in a header; the
//! gateway believes that header only from a configured proxy, as the original's
//! `authorizeTrustedProxy` does (`docs/gateway/trusted-proxy-auth.md`). The checks run in the
//! original's order, and each failure has its reason (`trusted_proxy_*`), which only logs and
//! `details.authReason` show: clients get "unauthorized".

use std::{collections::HashMap, net::IpAddr};

use serde_json::Value;

use crate::{
    config::{as_bool, as_str, fields, invalid, strings, ConfigError},
    http::proxy::{Attribution, TrustedProxies},
};

/// `gateway.auth.trustedProxy` (and the password kept for local-direct fallback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxyAuth {
    /// The header naming the user (compared lowercased).
    pub user_header: String,
    /// Headers that must be present and non-blank (as configured: the reason names them so).
    pub required_headers: Vec<String>,
    /// Users let in (exact, case-sensitive); empty = everyone the proxy names.
    pub allow_users: Vec<String>,
    /// Accept a proxy on loopback (it must also be in `gateway.trustedProxies`).
    pub allow_loopback: bool,
    /// `gateway.auth.password`: a local client connecting directly may use it instead.
    pub password: Option<String>,
    /// `gateway.auth.identityScopes`: operator scopes granted per proxy user.
    pub identity_scopes: HashMap<String, Vec<String>>,
    /// This host's own (non-loopback) addresses when the config was loaded: a "proxy" at one
    /// of them is a local process, which `allowLoopback` governs.
    pub local_addrs: Vec<IpAddr>,
}

impl TrustedProxyAuth {
    /// Parses `gateway.auth.trustedProxy`.
    pub fn parse(v: &Value, path: &str) -> Result<TrustedProxyAuth, ConfigError> {
        let mut t = TrustedProxyAuth::default();
        let allowed = [
            "userHeader",
            "requiredHeaders",
            "allowUsers",
            "allowLoopback",
        ];
        for (k, v, key) in fields(v, path, &allowed)? {
            match k {
                "userHeader" => t.user_header = as_str(&key, v)?.trim().to_ascii_lowercase(),
                "requiredHeaders" => t.required_headers = strings(&key, v)?,
                "allowUsers" => t.allow_users = strings(&key, v)?,
                _ => t.allow_loopback = as_bool(&key, v)?,
            }
        }
        if t.user_header.is_empty() {
            return Err(invalid(
                path,
                "gateway auth mode is trusted-proxy, but trustedProxy.userHeader is empty (set gateway.auth.trustedProxy.userHeader)",
            ));
        }
        Ok(t)
    }

    /// The scopes `identityScopes` grants `user` (exact key, else case-insensitive for
    /// e-mail-like keys).
    pub fn scopes_of(&self, user: &str) -> &[String] {
        if let Some(s) = self.identity_scopes.get(user) {
            return s;
        }
        self.identity_scopes
            .iter()
            .find(|(k, _)| k.contains('@') && k.eq_ignore_ascii_case(user))
            .map_or(&[], |(_, s)| s.as_slice())
    }
}

/// Parses `gateway.auth.identityScopes`: `{ "<user>": ["operator.read", …] }`.
pub fn parse_identity_scopes(
    v: &Value,
    path: &str,
) -> Result<HashMap<String, Vec<String>>, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object of user → scopes"))?;
    obj.iter()
        .map(|(user, scopes)| {
            let key = format!("{path}.{user}");
            let list = strings(&key, scopes)?;
            if let Some(bad) = list
                .iter()
                .find(|s| crate::proto::scopes::Scope::parse(s).is_none())
            {
                return Err(invalid(&key, format!("`{bad}` is not an operator scope")));
            }
            Ok((user.clone(), list))
        })
        .collect()
}

/// Who a request is from, when the trusted proxy's identity checks out.
pub fn authorize(
    auth: &TrustedProxyAuth,
    proxies: &TrustedProxies,
    peer: IpAddr,
    attribution: Attribution,
    header: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if proxies.nets.is_empty() {
        return Err("trusted_proxy_no_proxies_configured".into());
    }
    if !proxies.trusts(peer) {
        return Err("trusted_proxy_untrusted_source".into());
    }
    if peer.is_loopback() && !auth.allow_loopback {
        return Err("trusted_proxy_loopback_source".into());
    }
    let peer_canonical = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    if !peer.is_loopback() && auth.local_addrs.contains(&peer_canonical) {
        return Err("trusted_proxy_local_interface_source".into());
    }
    let present = |name: &str| {
        header(&name.trim().to_ascii_lowercase())
            .map(|v| crate::http::js_trim(&v).to_owned())
            .filter(|v| !v.is_empty())
    };
    for h in &auth.required_headers {
        if present(h).is_none() {
            return Err(format!("trusted_proxy_missing_header_{h}"));
        }
    }
    let user = present(&auth.user_header).ok_or("trusted_proxy_user_missing")?;
    if !auth.allow_users.is_empty() && !auth.allow_users.contains(&user) {
        return Err("trusted_proxy_user_not_allowed".into());
    }
    // The proxy must also have named a client that is not itself.
    match attribution {
        Attribution::Proxied(_) => Ok(user),
        _ => Err("proxy_attribution_required".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proxy::Cidr;
    use serde_json::json;

    fn cfg() -> TrustedProxyAuth {
        TrustedProxyAuth::parse(
            &json!({"userHeader": "X-Forwarded-User", "requiredHeaders": ["X-Auth-Proof"], "allowUsers": ["ann@example.com"]}),
            "gateway.auth.trustedProxy",
        )
        .unwrap()
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies {
            nets: nets.iter().map(|n| Cidr::parse(n).unwrap()).collect(),
            real_ip_fallback: false,
        }
    }

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn checks_run_in_the_originals_order() {
        let c = cfg();
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let client = Attribution::Proxied("203.0.113.9".parse().unwrap());
        let ok = headers(&[
            ("x-forwarded-user", " ann@example.com "),
            ("x-auth-proof", "1"),
        ]);
        assert_eq!(
            authorize(&c, &proxies(&["10.0.0.0/8"]), proxy, client, &ok),
            Ok("ann@example.com".into())
        );
        let err2 = |c: &TrustedProxyAuth,
                    p: &TrustedProxies,
                    peer: IpAddr,
                    a: Attribution,
                    h: &dyn Fn(&str) -> Option<String>| {
            authorize(c, p, peer, a, h).unwrap_err()
        };
        let err = |p: &TrustedProxies,
                   peer: IpAddr,
                   a: Attribution,
                   h: &dyn Fn(&str) -> Option<String>| err2(&c, p, peer, a, h);
        assert_eq!(
            err(&proxies(&[]), proxy, client, &ok),
            "trusted_proxy_no_proxies_configured"
        );
        assert_eq!(
            err(&proxies(&["10.9.0.0/16"]), proxy, client, &ok),
            "trusted_proxy_untrusted_source"
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            err(&proxies(&["127.0.0.1"]), lo, client, &ok),
            "trusted_proxy_loopback_source"
        );
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            err(
                &p,
                proxy,
                client,
                &headers(&[("x-forwarded-user", "ann@example.com")])
            ),
            "trusted_proxy_missing_header_X-Auth-Proof"
        );
        assert_eq!(
            err(
                &p,
                proxy,
                client,
                &headers(&[("x-auth-proof", "1"), ("x-forwarded-user", "  ")])
            ),
            "trusted_proxy_user_missing"
        );
        assert_eq!(
            err(
                &p,
                proxy,
                client,
                &headers(&[
                    ("x-auth-proof", "1"),
                    ("x-forwarded-user", "ANN@example.com")
                ])
            ),
            "trusted_proxy_user_not_allowed"
        );
        assert_eq!(
            err(&p, proxy, Attribution::Unattributable, &ok),
            "proxy_attribution_required"
        );
        let mut c2 = c.clone();
        c2.allow_loopback = true;
        assert!(authorize(&c2, &proxies(&["127.0.0.1"]), lo, client, &ok).is_ok());
        // A process on this host, at one of its own addresses, is not a proxy.
        c2.local_addrs = vec![proxy];
        assert_eq!(
            err2(&c2, &p, proxy, client, &ok),
            "trusted_proxy_local_interface_source"
        );
        // JavaScript's trim: a look-alike space is part of the name, a no-break space is not.
        let nbsp = headers(&[
            ("x-auth-proof", "1"),
            ("x-forwarded-user", "ann@example.com\u{a0}"),
        ]);
        assert!(authorize(&c, &p, proxy, client, &nbsp).is_ok());
        let nel = headers(&[
            ("x-auth-proof", "1"),
            ("x-forwarded-user", "\u{85}ann@example.com"),
        ]);
        assert_eq!(
            err(&p, proxy, client, &nel),
            "trusted_proxy_user_not_allowed"
        );
    }

    #[test]
    fn config_and_identity_scopes() {
        let e = TrustedProxyAuth::parse(&json!({"userHeader": " "}), "gateway.auth.trustedProxy")
            .unwrap_err();
        assert!(e.to_string().contains("userHeader is empty"), "{e}");
        assert!(TrustedProxyAuth::parse(&json!({"userHeader": "x", "nope": 1}), "k").is_err());
        let mut c = cfg();
        c.identity_scopes = parse_identity_scopes(
            &json!({"Ann@Example.com": ["operator.admin"], "bob": ["operator.read"]}),
            "s",
        )
        .unwrap();
        assert_eq!(
            c.scopes_of("ann@example.com"),
            ["operator.admin".to_owned()]
        );
        assert_eq!(c.scopes_of("bob"), ["operator.read".to_owned()]);
        assert!(c.scopes_of("BOB").is_empty());
        assert!(parse_identity_scopes(&json!({"x": ["root"]}), "s").is_err());
    }
}
