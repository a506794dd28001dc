//! Configuration errors (`ringgate run --config F`): unknown keys and invalid values exit 2
//! naming the key; `--check-config` on a valid file exits 0.

mod common;

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::{bin, TempDir};

/// Runs the binary with a bounded wait (it must exit by itself).
fn run(args: &[&str], dir: &TempDir) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("RINGGATE_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringgate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringgate {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn with_config(text: &str, extra: &[&str]) -> Output {
    let dir = TempDir::new("cfg");
    let path = dir.path().join("ringgate.json5");
    std::fs::write(&path, text).unwrap();
    let state = dir.path().join("state");
    let mut args = vec![
        "run",
        "--config",
        path.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    run(&args, &dir)
}

#[test]
fn unknown_key_exits_2_naming_it() {
    let out = with_config("{ ringgate: { limits: { maxPayloud: 1024 } } }", &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown config key `ringgate.limits.maxPayloud`"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "must not start"
    );
}

#[test]
fn unknown_top_level_key_exits_2() {
    let out = with_config("{ gateway: { prot: 1 } }", &["--check-config"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("`gateway.prot`"));
}

#[test]
fn out_of_range_value_exits_2_naming_it() {
    let out = with_config("{ ringgate: { limits: { tickIntervalMs: 5 } } }", &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`ringgate.limits.tickIntervalMs`"),
        "{stderr}"
    );
}

#[test]
fn invalid_json5_exits_2() {
    let out = with_config("{ ringgate: ", &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON5"));
}

#[test]
fn check_config_ok_exits_0() {
    let out = with_config(
        r#"{
            // comments are allowed
            gateway: { auth: { mode: "token", token: "T" } },
            ringgate: { shards: 2, driver: "epoll",
                        limits: { maxPayload: 8192, tickIntervalMs: 100 } },
        }"#,
        &["--check-config"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration ok"));
}

#[test]
fn bad_driver_flag_exits_2() {
    let dir = TempDir::new("cfg");
    let state = dir.path().join("state");
    let out = run(
        &[
            "run",
            "--driver",
            "kqueue",
            "--state-dir",
            state.to_str().unwrap(),
            "--check-config",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--driver"));
}
