//! A real `redis-server` for the tests: found on `PATH` (or at
//! `$WSCHAT_REDIS_SERVER`), started on a free port of 127.0.0.1 with a
//! temporary `--dir` and `--appendonly yes`, killed by its PID.
//!
//! [`RedisServer::start`] returns `None`, after printing why, only when
//! `redis-server` is not installed and `CI` is not set; under CI a missing
//! `redis-server` fails the test (`.ci/cluster.sh` installs it).

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Ports tried before giving up on starting a server the tests run (a
/// redis-server here, a wschat node in `node.rs`): a port free a moment
/// ago may have been given meanwhile to a server another test of the same
/// file started.
pub const START_ATTEMPTS: usize = 5;

/// How long redis-server may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A redis-server of the test's own.
pub struct RedisServer {
    child: Option<Child>,
    program: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

/// Where redis-server is, if anywhere.
pub fn find_redis_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WSCHAT_REDIS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

impl RedisServer {
    /// Start one, or `None` (printed) when redis-server is not installed
    /// outside CI.
    pub fn start(test: &str) -> Option<RedisServer> {
        let Some(program) = find_redis_server() else {
            if under_ci() {
                panic!(
                    "{test}: redis-server is not installed, and CI is set: install it (apt-get install redis-server, as .ci/cluster.sh does)"
                );
            }
            eprintln!(
                "SKIPPED {test}: redis-server is not installed (apt-get install redis-server); under CI=true this fails"
            );
            return None;
        };
        // A port that was free a moment ago may be another test's by the
        // time redis-server binds it (tests of a file run in parallel):
        // then another port.
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir =
                std::env::temp_dir().join(format!("wschat-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("the server's directory");
            let mut server = RedisServer {
                child: None,
                program: program.clone(),
                port,
                dir,
            };
            match server.try_launch() {
                Ok(()) => return Some(server),
                Err(log) if log.contains("Address already in use") => last = log,
                Err(log) => panic!("redis-server on port {port} did not start: {log}"),
            }
        }
        panic!("redis-server found no free port in {START_ATTEMPTS} attempts: {last}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start it on its port, and panic if it does not start.
    fn launch(&mut self) {
        if let Err(log) = self.try_launch() {
            panic!("redis-server on port {} did not start: {log}", self.port);
        }
    }

    /// Start it on its port; its log if it does not become ready.
    fn try_launch(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let stdout = child.stdout.take().expect("its stdout");
        let (ready_tx, ready_rx) = mpsc::channel();
        // Read its log until it says it is ready, then drain it.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut log = Vec::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.contains("Ready to accept connections") {
                    let _ = ready_tx.send(Ok(()));
                    for _ in lines.by_ref() {}
                    return;
                }
                log.push(line);
            }
            let _ = ready_tx.send(Err(log.join("\n")));
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                Err(match other {
                    Ok(Err(log)) => log,
                    other => format!("{other:?}"),
                })
            }
        }
    }

    /// `kill -9` it (by its PID) and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and directory (its append-only file
    /// brings its data back).
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
