//! Every io driver (monoio on epoll and io_uring, glommio) serves the protocol: handshake, `health`, `system-presence`, a broadcast.

mod common;

use common::{params_for, Client, Server};
use serde_json::json;

fn exercise(driver: &str) {
    let server = Server::opts().arg("--driver").arg(driver).start();
    let mut a = Client::connect(&server);
    let mut b = Client::connect(&server);
    assert_eq!(a.hello["protocol"], 4);
    let h = a.call("health", None);
    assert_eq!(h["ok"], true, "{h}");
    let status = a.call("status", None);
    assert_eq!(status["gateway"]["driver"], driver, "{status}");
    let list = b.call("system-presence", None);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["mode"] == "gateway"),
        "{list}"
    );
    // A broadcast reaches the other connection.
    let mut p = params_for("openclaw-linux", "ui", &[]);
    p["client"]["instanceId"] = json!(format!("drv-{driver}"));
    let _ui = Client::connect_with(&server, &p);
    b.wait_event_where("presence", common::READ_TIMEOUT, |e| {
        e["payload"]["presence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["instanceId"] == format!("drv-{driver}"))
    });
    // Larger frames cross the driver in several reads.
    let id = a.send_request("health", Some(json!({"pad": "y".repeat(300_000)})));
    let res = a.wait_response(&id, common::READ_TIMEOUT);
    assert_eq!(res["ok"], true);
}

#[test]
fn epoll() {
    exercise("epoll");
}

#[test]
fn io_uring() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring is not available on this machine");
        return;
    }
    exercise("io_uring");
}

#[test]
fn glommio() {
    if !common::io_uring_available() {
        eprintln!("skipping: io_uring (which glommio needs) is not available on this machine");
        return;
    }
    exercise("glommio");
}

/// Starts `ringgate run` with a locked-memory limit of `memlock` bytes (below glommio's
/// 512 KiB floor in these tests) and the given extra arguments.
fn spawn_with_memlock(memlock: u64, dir: &common::TempDir, extra: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["run", "--port", "0", "--bind", "127.0.0.1", "--token", "T"])
        .arg("--state-dir")
        .arg(dir.path())
        .args(extra)
        .env("RINGGATE_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: memlock,
                rlim_max: memlock,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn ringgate")
}

/// An explicit glommio that cannot start (here: a locked-memory limit below its floor) exits
/// 2 with one line naming the reason, before listening; `auto` on the same host starts on
/// monoio and never picks glommio.
#[test]
fn glommio_that_cannot_start_exits_2_and_auto_never_picks_it() {
    use std::io::{BufRead, Read};
    let dir = common::TempDir::new("glommio-memlock");
    let mut child = spawn_with_memlock(64 << 10, &dir, &["--driver", "glommio"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ringgate kept running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "stdout: {out}\nstderr: {err}");
    assert!(!out.contains("listening"), "{out}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("glommio")).collect();
    assert_eq!(lines.len(), 1, "one line naming the driver: {err}");
    assert!(
        lines[0].contains("locked-memory limit") && lines[0].contains("64 KiB"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let dir = common::TempDir::new("auto-memlock");
    let mut child = spawn_with_memlock(64 << 10, &dir, &["--shards", "2"]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("listening on ws://"), "{line}");
    // Each shard logs its driver as it starts; read until both have.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in stderr.lines().map_while(Result::ok) {
            if l.contains("shard started") && tx.send(l).is_err() {
                return;
            }
        }
    });
    let started: Vec<String> = (0..2)
        .map(|_| {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("a shard-started line")
        })
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let expected = if common::io_uring_available() {
        "driver=\"io_uring\""
    } else {
        "driver=\"epoll\""
    };
    assert!(started.iter().all(|l| l.contains(expected)), "{started:?}");
}
