//! A text frame through the protocol layer: JSON parse, the request-frame schema, the
//! connect params schema and the connect gate, and the params schema of the method it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::{
    auth::secret::AuthMode,
    proto::{
        frame::{res_ok, Parser},
        handshake::{self, ConnectInput, Peer},
        schema::Schemas,
    },
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parser = Parser::default();
    let Some(frame) = parser.parse(data) else {
        return;
    };
    let schemas = Schemas::get();
    let _ = res_ok("1", &frame);
    if schemas.check_request(&frame).is_err() {
        return;
    }
    let method = frame["method"].as_str().unwrap_or_default();
    let empty = Value::Object(Default::default());
    let params = frame.get("params").unwrap_or(&empty);
    if method == "connect" {
        if schemas.check_connect(params).is_err() {
            return;
        }
        let auth = AuthMode::Token("secret".into());
        let origins = vec!["https://ui.example".to_owned()];
        for ip in ["127.0.0.1", "10.1.2.3"] {
            let _ = handshake::evaluate(&ConnectInput {
                params,
                challenge_nonce: "nonce",
                now_ms: 1_800_000_000_000,
                peer: Peer {
                    ip: ip.parse().unwrap(),
                    origin: Some("http://127.0.0.1:18789"),
                    host: Some("127.0.0.1:18789"),
                    scopes_header: None,
                    proxy_identity: None,
                    direct_local: false,
                },
                auth: &auth,
                allowed_origins: &origins,
                paired: None,
            });
        }
    } else {
        let _ = schemas.check_params(method, params);
    }
});
