//! A real `nats-server` (Debian's package; `make test` installs it) with JetStream, on a
//! loopback port of its own and a temporary store, for the cluster tests. Killed on drop.

use std::{
    io::{BufRead, BufReader},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use super::TempDir;

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    jetstream: bool,
    /// A user and password the server requires.
    login: Option<(String, String)>,
    store: TempDir,
}

impl Nats {
    /// Starts `nats-server -js` on a port it picks; panics with the way to install it when
    /// the binary is missing.
    pub fn start() -> Nats {
        Self::start_with(true)
    }

    /// Without JetStream (to test the start-up check).
    pub fn without_jetstream() -> Nats {
        Self::start_with(false)
    }

    /// With JetStream, requiring this user and password.
    pub fn with_login(user: &str, pass: &str) -> Nats {
        let mut n = Nats {
            child: None,
            port: 0,
            jetstream: true,
            login: Some((user.into(), pass.into())),
            store: TempDir::new("nats"),
        };
        n.spawn(None);
        n
    }

    fn start_with(jetstream: bool) -> Nats {
        let mut n = Nats {
            child: None,
            port: 0,
            jetstream,
            login: None,
            store: TempDir::new("nats"),
        };
        n.spawn(None);
        n
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (on `port`, or a port it picks and logs) and waits until it accepts.
    fn spawn(&mut self, port: Option<u16>) {
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new(bin());
        cmd.args(["-a", "127.0.0.1", "-p", &port_arg]);
        if self.jetstream {
            cmd.arg("-js").arg("-sd").arg(self.store.path());
        }
        if let Some((user, pass)) = &self.login {
            cmd.args(["--user", user, "--pass", pass]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start nats-server ({e}); install Debian's nats-server (make nats-deps)"
                )
            });
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    let port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    let _ = tx.send(port);
                }
            }
        });
        let port: u16 = rx
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .expect("nats-server did not report its port");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server does not accept");
            thread::sleep(Duration::from_millis(20));
        }
        self.port = port;
        self.child = Some(child);
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(Some(port));
    }
}

fn bin() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server")
            .to_owned()
    })
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}
