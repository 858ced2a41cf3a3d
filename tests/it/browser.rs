//! The web interface in headless Chromium: Debian's `chromium` package
//! (installed with apt-get on first use when /usr/bin/chromium is missing,
//! under a file lock so parallel test processes do not race apt), driven by
//! playwright-core, with axe-core checking every page; both pinned by
//! `tests/browser/package-lock.json` and installed with `npm ci` into
//! `target/test-tools/` on first use. The scenario itself is
//! `tests/browser/scenario.cjs`; its screenshots and results land in
//! `target/test-artifacts/browser/`.

use crate::web::{Server, PASSWORD};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tools() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[track_caller]
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Debian's Chromium: `$STYRLOGG_CHROMIUM`, or /usr/bin/chromium, installed
/// with apt-get (as root, as CI runs) when it is missing.
pub fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("STYRLOGG_CHROMIUM") {
        return PathBuf::from(p);
    }
    let bin = PathBuf::from("/usr/bin/chromium");
    if bin.is_file() {
        return bin;
    }
    let lock = std::fs::File::create(tools().join("apt.lock")).unwrap();
    lock.lock().unwrap();
    if !bin.is_file() {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the browser tests need Debian's chromium: run `apt-get install chromium` as root, or set STYRLOGG_CHROMIUM"
        );
        run(Command::new("apt-get").args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive"));
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive"));
    }
    drop(lock);
    assert!(bin.is_file(), "chromium installed at {}", bin.display());
    bin
}

/// The pinned npm packages (playwright-core, axe-core), installed once per
/// version of the lock file: returns their `node_modules`.
pub fn node_modules() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let lockfile = std::fs::read(src.join("package-lock.json")).unwrap();
    let version = &blake3::hash(&lockfile).to_hex()[..16];
    let dir = tools().join(format!("browser-{version}"));
    let modules = dir.join("node_modules");
    if dir.join("installed").is_file() {
        return modules;
    }
    let lock = std::fs::File::create(tools().join("npm.lock")).unwrap();
    lock.lock().unwrap();
    if !dir.join("installed").is_file() {
        let tmp = tools().join(format!("browser-{version}.partial"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(src.join(f), tmp.join(f)).unwrap();
        }
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"])
            .current_dir(&tmp));
        std::fs::write(tmp.join("installed"), version).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).unwrap();
    }
    drop(lock);
    modules
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn browser_scenario_with_accessibility_checks() {
    let chromium = chromium();
    let modules = node_modules();
    let server = Server::start();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/browser");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/scenario.cjs");
    let log = std::fs::File::create(out.join("scenario.log")).unwrap();
    let mut child = Killed(
        Command::new("node")
            .arg(&script)
            .arg(server.url())
            .arg(&out)
            .arg(modules.join("axe-core/axe.min.js"))
            .arg(profile.path().join("chromium"))
            .arg(&chromium)
            .arg(PASSWORD)
            .env("NODE_PATH", &modules)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("node runs"),
    );
    // The scenario stops by itself; this only keeps a hung browser from holding the test.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the browser scenario did not finish");
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(out.join("scenario.log")).unwrap_or_default();
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).unwrap_or_else(|_| panic!("no results.json; log:\n{log}")),
    )
    .unwrap();
    assert!(status.success(), "the browser scenario failed: {}\nlog:\n{log}", results["error"]);

    let pages = results["pages"].as_array().unwrap();
    assert!(pages.len() >= 15, "every page was checked: {}", pages.len());
    let mut serious = Vec::new();
    for p in pages {
        assert!(out.join(format!("{}.png", p["name"].as_str().unwrap())).is_file(), "a screenshot of {}", p["name"]);
        assert!(p["passes"].as_u64().unwrap() > 10, "axe ran on {}", p["name"]);
        for v in p["violations"].as_array().unwrap() {
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                serious.push(format!("{}: {} ({}) at {}", p["name"], v["id"], v["help"], v["nodes"]));
            }
        }
    }
    assert!(serious.is_empty(), "serious or critical accessibility violations:\n{}", serious.join("\n"));
    assert_eq!(results["downloads"][0]["name"], "styrlogg-compliance-webb-2012.csv");
}
