//! `styrlogg serve` over real HTTP on loopback: the binary is started on
//! 127.0.0.1:0 over a store with the five source histories, with users
//! made by `styrlogg user`; every refusal (no credentials, a missing CSRF
//! token, a role not held or not allowed, a rejected step, bad input) is
//! checked to leave the log's head as it was.

use crate::cli::styrlogg;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "rätt-lösenord-1";
pub const TODAY: &str = "2015-10-22";

/// A running `styrlogg serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
    /// The API token of `diariet` (role registrator).
    pub token: String,
    /// The store's directory and the users file the server follows.
    pub data: std::path::PathBuf,
    pub users: std::path::PathBuf,
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The demo's five histories in a fresh store, the test users, and the
    /// server on a free port. `global` are options before `serve` (e.g. --nats).
    pub fn start_with(global: &[&str], load_demo: bool) -> Server {
        Server::start_full(global, &[], load_demo)
    }

    /// As [`Server::start_with`], with options after `serve`; with
    /// `--remind` the server follows the clock, so no --today is given.
    pub fn start_full(global: &[&str], serve: &[&str], load_demo: bool) -> Server {
        Server::start_prepared(global, serve, load_demo, |_| {})
    }

    /// As [`Server::start_full`], with `prepare` run on the store's
    /// directory before the server starts.
    pub fn start_prepared(global: &[&str], serve: &[&str], load_demo: bool, prepare: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let users = dir.path().join("users.toml");
        if load_demo {
            let demo = styrlogg(&data, &[global, &["demo"]].concat());
            assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
        }
        prepare(&data);
        for (login, name, roles) in [
            ("eva", "Eva Sekreterare", &["sekreterare", "registrator"][..]),
            ("ordf", "Olle Ordförande", &["styrgrupp"][..]),
            ("pl", "Pia Projektledare", &["projektledare"][..]),
        ] {
            let mut args = vec!["--users", users.to_str().unwrap(), "user", "add", login, "--name", name];
            for r in roles {
                args.extend(["--role", r]);
            }
            add_user(&data, &args, PASSWORD);
        }
        let out =
            styrlogg(&data, &["--users", users.to_str().unwrap(), "user", "token", "diariet", "--role", "registrator"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let config = dir.path().join("styrlogg.toml");
        std::fs::write(&config, "").unwrap();
        let today: &[&str] = if serve.contains(&"--remind") { &[] } else { &["--today", TODAY] };
        let mut child = Command::new(env!("CARGO_BIN_EXE_styrlogg"))
            .arg("--data")
            .arg(&data)
            .args(["--users", users.to_str().unwrap(), "--config", config.to_str().unwrap()])
            .args(today)
            .args(global)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(serve)
            .env_remove("RUST_LOG")
            .env_remove("STYRLOGG_CONFIG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the styrlogg binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some(addr) = line.split("http://").nth(1).and_then(|s| s.split('/').next()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not start: {line:?}; log: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
        };
        Server { addr: addr.to_string(), child, _dir: dir, token, data, users }
    }

    pub fn start() -> Server {
        Server::start_with(&[], true)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        http(&self.addr, method, path, headers, body)
    }

    /// The log's head as `styrlogg head` would say it, read through the API.
    pub fn head(&self) -> String {
        let auth = format!("Bearer {}", self.token);
        let r = self.request("GET", "/api/head", &[("authorization", &auth)], None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Logs in through the API: (cookie header value, CSRF token).
    pub fn login(&self, login: &str) -> (String, String) {
        let body = format!(r#"{{"login":"{login}","password":"{PASSWORD}"}}"#);
        let r = self.request("POST", "/api/session", &[("content-type", "application/json")], Some(&body));
        assert_eq!(r.status, 200, "{}", r.body);
        let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        (cookie, csrf)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `styrlogg user ...` started with `password` on its standard input.
fn spawn_user(data: &Path, args: &[&str], password: &str) -> Child {
    let mut child = crate::cli::command(data, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child
}

fn add_user(data: &Path, args: &[&str], password: &str) {
    let out = spawn_user(data, args, password).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string())).collect();
    let mut rest = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let end = i + rest[i..].windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(String::from_utf8_lossy(&rest[i..end]).trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + n]);
            i = end + 2 + n + 2;
        }
        rest = out;
    }
    Resp { status, headers, body: String::from_utf8_lossy(&rest).into_owned() }
}

fn json_post(s: &Server, path: &str, auth: &[(&str, &str)], body: &str) -> Resp {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(auth);
    s.request("POST", path, &h, Some(body))
}

#[track_caller]
fn assert_error(r: &Resp, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "{r:?}");
    let j = r.json();
    assert_eq!(j["code"], code, "{}", r.body);
    assert!(!j["message"].as_str().unwrap_or_default().is_empty(), "{}", r.body);
    j
}

const START: &str = r#"{"workflow":"skl-styrsystem-2012-2014","instance":"vaxholm-2012","organisation":"Vaxholms stad","on":"2012-01-15","role":"registrator"}"#;
const INTEREST: &str = r#"{"step":"intresseanmalan","on":"2012-01-20","role":"registrator","facts":[["kontaktperson","Anita Brynje|kontaktperson|official"],["organisation","Tyresö kommun"]]}"#;
const BOARD_INCOMPLETE: &str =
    r#"{"step":"styrelsebeslut","on":"2012-09-03","role":"sekreterare","facts":[["organ","Kommunstyrelsen"]]}"#;

/// A store whose log was found damaged takes no writes: the server says
/// so with 503, without its paths or commands, and keeps serving reads.
#[test]
fn a_damaged_log_refuses_writes_with_503_and_no_server_paths() {
    let s = Server::start_prepared(&[], &[], true, |data| {
        std::fs::write(data.join("DAMAGED"), "17\nthe frame at position 17 does not match its hash\n").unwrap();
    });
    let (cookie, csrf) = s.login("eva");
    let eva = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let head = s.head();
    let j = assert_error(&json_post(&s, "/api/instances", &eva, START), 503, "store-error");
    let said = j["message"].as_str().unwrap();
    assert!(said.contains("damaged at position 17") && said.contains("nothing of this request was stored"), "{j}");
    let data = s.data.to_str().unwrap();
    assert!(!said.contains(data) && !said.contains("DAMAGED") && !said.contains("styrlogg "), "{j}");
    assert_eq!(s.head(), head, "reads go on, and nothing was written");
}

#[test]
fn api_refuses_what_it_must_and_writes_nothing_then() {
    let s = Server::start();
    let (cookie, csrf) = s.login("eva");
    let eva = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = json_post(&s, "/api/instances", &eva, START);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["deduplicated"], false);
    let started = r.json()["position"].as_u64().unwrap();
    let steps = "/api/instances/vaxholm-2012/steps";

    // The same start again is a retry, as on the command line: 200, nothing new.
    let head = s.head();
    let again = json_post(&s, "/api/instances", &eva, START);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["deduplicated"], true);
    assert_eq!(again.json()["position"].as_u64().unwrap(), started);
    // Another start under the same id is refused.
    let other = START.replace("Vaxholms stad", "Vaxholms kommun");
    let j = assert_error(&json_post(&s, "/api/instances", &eva, &other), 409, "instance-exists");
    assert_eq!(j["field"], "instance");
    // The log's own instance is no workflow instance.
    let system = START.replace("vaxholm-2012", "styrlogg:system");
    let j = assert_error(&json_post(&s, "/api/instances", &eva, &system), 400, "invalid-input");
    assert_eq!(j["field"], "instance", "{j}");
    assert!(j["message"].as_str().unwrap().contains("reserved for the log's own events"), "{j}");
    // Nor is an id that a path in an address would not keep as it is.
    let dots = START.replace("vaxholm-2012", "../vaxholm");
    let j = assert_error(&json_post(&s, "/api/instances", &eva, &dots), 400, "invalid-input");
    assert_eq!(j["field"], "instance", "{j}");
    // A case number the log cannot take is refused next to its field, not by the log.
    let long = START.replace(r#""role""#, &format!(r#""case_number":"KS {}","role""#, "1".repeat(300)));
    let j = assert_error(
        &json_post(&s, "/api/instances", &eva, &long.replace("vaxholm-2012", "vaxholm-x")),
        400,
        "invalid-input",
    );
    assert_eq!(j["field"], "case_number", "{j}");
    assert_eq!(s.head(), head, "neither the retry nor the other starts wrote anything");

    // No credentials: 401 with how to authenticate, nothing written.
    assert_error(&json_post(&s, steps, &[], INTEREST), 401, "unauthorized");
    let r = s.request("GET", "/api/instances", &[], None);
    assert_error(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
    let r = s.request("GET", "/api/me", &[("authorization", "Bearer not-a-token")], None);
    assert_error(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{r:?}");
    // A method the path does not take: 405, with the methods it does.
    let r = s.request("DELETE", "/api/instances", &eva, None);
    assert_error(&r, 405, "method-not-allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("POST")), "{r:?}");
    // A session without its CSRF token: refused.
    assert_error(&json_post(&s, steps, &[("cookie", &cookie)], INTEREST), 403, "csrf-failed");
    assert_error(&json_post(&s, steps, &[("cookie", &cookie), ("x-csrf-token", "0000")], INTEREST), 403, "csrf-failed");
    // A role the user does not hold: 403.
    let as_pl = INTEREST.replace("\"registrator\"", "\"projektledare\"");
    let j = assert_error(&json_post(&s, steps, &eva, &as_pl), 403, "role-not-held");
    assert_eq!(j["field"], "role");
    // A role the workflow does not let record the step: 403 with the rule's message.
    let (ocookie, ocsrf) = s.login("ordf");
    let ordf = [("cookie", ocookie.as_str()), ("x-csrf-token", ocsrf.as_str())];
    let j = assert_error(
        &json_post(&s, steps, &ordf, &INTEREST.replace("\"registrator\"", "\"styrgrupp\"")),
        403,
        "role-not-allowed",
    );
    assert!(j["message"].as_str().unwrap().contains("may not record intresseanmalan"), "{j}");
    assert!(j["remedy"].as_str().unwrap().contains("registrator"), "{j}");
    // Bad input: not JSON, an unknown field (the actor is never taken from the body), a bad date.
    assert_error(&json_post(&s, steps, &eva, "{not json"), 400, "invalid-input");
    let with_by = INTEREST.replace("\"role\"", "\"by\":\"Someone Else\",\"role\"");
    assert_error(&json_post(&s, steps, &eva, &with_by), 400, "invalid-input");
    let j =
        assert_error(&json_post(&s, steps, &eva, &INTEREST.replace("2012-01-20", "2012-02-30")), 400, "invalid-input");
    assert_eq!(j["field"], "on");
    assert_error(&json_post(&s, "/api/instances/no-such/steps", &eva, INTEREST), 404, "not-found");
    let big = format!(
        r#"{{"step":"intresseanmalan","on":"2012-01-20","role":"registrator","deviation":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_error(&json_post(&s, steps, &eva, &big), 413, "body-too-large");
    assert_error(&s.request("POST", steps, &eva, Some(INTEREST)), 415, "unsupported-media-type");
    assert_eq!(s.head(), head, "nothing was written by any refused request");

    // The step as it should be: 201, by the logged-in user.
    let r = json_post(&s, steps, &eva, INTEREST);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["deduplicated"], false);
    let position = r.json()["position"].as_u64().unwrap();
    // The same command again is a retry: 200, nothing new.
    let again = json_post(&s, steps, &eva, INTEREST);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["deduplicated"], true);
    assert_eq!(again.json()["position"].as_u64().unwrap(), position);

    // A rejected step: 422 with the rule, its message and remedy, next to the fact concerned.
    let head = s.head();
    let j = assert_error(&json_post(&s, steps, &eva, BOARD_INCOMPLETE), 422, "missing-fact");
    assert_eq!(j["field"], "fact.protokoll", "{j}");
    assert_eq!(j["step"], "styrelsebeslut");
    assert!(j["message"].as_str().unwrap().contains("required fact \"protokoll\""), "{j}");
    // The remedy speaks of the form's fields, not of command-line options.
    assert!(j["remedy"].as_str().unwrap().starts_with("Give the fact protokoll: BODY|DATE|§"), "{j}");
    // In Swedish when the client asks for it; the code, step and field are the same.
    let sv = [eva[0], eva[1], ("accept-language", "sv-SE,sv;q=0.9,en;q=0.5")];
    let j = assert_error(&json_post(&s, steps, &sv, BOARD_INCOMPLETE), 422, "missing-fact");
    assert_eq!((&j["field"], &j["step"]), (&"fact.protokoll".into(), &"styrelsebeslut".into()), "{j}");
    // Every missing fact in one refusal; the field is the first of them.
    assert_eq!(
        j["message"],
        "den obligatoriska uppgiften \"protokoll\" saknas; den obligatoriska uppgiften \"diarienummer\" saknas",
        "{j}"
    );
    assert!(j["remedy"].as_str().unwrap().contains(". Ange uppgiften diarienummer: ett diarienummer"), "{j}");
    assert!(j["remedy"].as_str().unwrap().starts_with("Ange uppgiften protokoll: ORGAN|DATUM|§"), "{j}");
    let j = assert_error(&json_post(&s, &format!("{steps}?lang=sv"), &[], INTEREST), 401, "unauthorized");
    assert_eq!(j["message"], "logga in för att göra detta", "{j}");
    let early = r#"{"step":"projektledare_utsedd","on":"2012-09-03","role":"sekreterare"}"#;
    let j = assert_error(&json_post(&s, steps, &eva, early), 422, "missing-prerequisite");
    assert!(j["remedy"].as_str().unwrap().contains("as a deviation, saying why"), "{j}");
    assert!(!j["remedy"].as_str().unwrap().contains("--"), "{j}");
    let ill = BOARD_INCOMPLETE
        .replace(r#"["organ","Kommunstyrelsen"]"#, r#"["organ","Kommunstyrelsen"],["protokoll","ks 3 sept"]"#);
    let j = assert_error(&json_post(&s, steps, &eva, &ill), 422, "ill-typed-fact");
    assert_eq!(j["field"], "fact.protokoll", "{j}");
    let future = INTEREST.replace("intresseanmalan", "beredning").replace("2012-01-20", "2016-01-01");
    let j = assert_error(&json_post(&s, steps, &eva, &future), 422, "future-date");
    assert_eq!(j["field"], "on");
    assert_eq!(s.head(), head, "a rejected step writes nothing");

    // The timeline names the logged-in user as the actor.
    let auth = format!("Bearer {}", s.token);
    let inst = s.request("GET", "/api/instances/vaxholm-2012", &[("authorization", &auth)], None);
    assert_eq!(inst.status, 200, "{}", inst.body);
    let entries = inst.json()["timeline"]["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["actor"], "Eva Sekreterare");
    assert_eq!(entries[1]["role"], "registrator");
    // A token records as itself.
    let token = [("authorization", auth.as_str())];
    let prepared = r#"{"step":"beredning","on":"2012-08-14","role":"registrator","facts":[["organ","Kommunstyrelsens arbetsutskott"],["behandling","Föreslår deltagande"]]}"#;
    let r = json_post(&s, steps, &token, prepared);
    assert_eq!(r.status, 201, "{}", r.body);
    let inst = s.request("GET", "/api/instances/vaxholm-2012", &token, None);
    assert_eq!(inst.json()["timeline"]["entries"][2]["actor"], "diariet");
    // A deadline change and a correction go through the same rules.
    let r = json_post(
        &s,
        "/api/instances/vaxholm-2012/deadlines",
        &eva,
        r#"{"step":"styrelsebeslut","extend_to":"2012-09-30","reason":"Anstånd från SKL","on":"2012-08-20","role":"sekreterare"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let event = entries[1]["event_id"].as_str().unwrap();
    let r =
        json_post(&s, "/api/corrections", &eva, &format!(r#"{{"event":"{event}","reason":"","role":"registrator"}}"#));
    assert_error(&r, 422, "invalid-text");
    // A correction of an event id that is not in the log: 404; of an event
    // that is in the log but is no recorded step (the start): 422.
    let head = s.head();
    let correct = |event: &str| {
        let body = format!(r#"{{"event":"{event}","reason":"Fel datum","date":"2012-01-19","role":"registrator"}}"#);
        json_post(&s, "/api/corrections", &eva, &body)
    };
    let j = assert_error(&correct(&"0".repeat(32)), 404, "not-found");
    assert!(j["message"].as_str().unwrap().contains("in the log"), "{j}");
    let j = assert_error(&correct(entries[0]["event_id"].as_str().unwrap()), 422, "unknown-event");
    assert_eq!(j["field"], "event");
    // Too short, or not hex: said as such, about the field.
    for bad in ["1b13", "not-an-id-at-all"] {
        let j = assert_error(&correct(bad), 400, "invalid-input");
        assert!(j["message"].as_str().unwrap().contains("the first 8 or more"), "{j}");
    }
    assert_eq!(s.head(), head);
    // The short id the pages and reports show names the event, as on the
    // command line.
    let short = &event[..12];
    let r = correct(short);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_ne!(s.head(), head, "the correction of {short} is written");
}

#[test]
fn login_limits_sessions_and_forms() {
    let s = Server::start();
    let wrong = r#"{"login":"pl","password":"fel-lösenord-9"}"#;
    let j = assert_error(&json_post(&s, "/api/session", &[], wrong), 401, "wrong-credentials");
    assert!(!j.to_string().contains("pl\""), "does not say whether the login exists: {j}");
    assert_error(&json_post(&s, "/api/session", &[], r#"{"login":"nobody","password":"x"}"#), 401, "wrong-credentials");
    // After five failures the login is refused even with the right password.
    for _ in 0..4 {
        assert_error(&json_post(&s, "/api/session", &[], wrong), 401, "wrong-credentials");
    }
    let right = format!(r#"{{"login":"pl","password":"{PASSWORD}"}}"#);
    let r = json_post(&s, "/api/session", &[], &right);
    assert_error(&r, 429, "too-many-attempts");
    // Retry-After: the seconds left of the 15-minute window of the first failure.
    let secs: u64 = r.header("retry-after").expect("Retry-After on a 429").parse().unwrap();
    assert!((800..=900).contains(&secs), "{secs}");
    assert!(r.header("www-authenticate").is_none(), "a 429 is no challenge");
    // Another user is not affected.
    let (cookie, csrf) = s.login("eva");

    // Cookies: HttpOnly and SameSite=Strict.
    let r = json_post(&s, "/api/session", &[], &right.replace("\"pl\"", "\"ordf\""));
    let set = r.header("set-cookie").unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");

    // A form without its CSRF token is refused and writes nothing.
    let head = s.head();
    let form = "step=intresseanmalan&on=2012-01-20&role=registrator";
    let r = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &cookie), ("content-type", "application/x-www-form-urlencoded")],
        Some(form),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("säkerhetskod"), "the page says it in Swedish: {}", r.body);
    // A form body the server cannot read (not form-encoded): said in the page's language too.
    let r = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &cookie), ("content-type", "text/plain")],
        Some(form),
    );
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("formuläret ska skickas med Content-Type"), "{}", r.body);
    // With it, a rejection comes back on the form, next to its field.
    let r = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &cookie), ("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("csrf={csrf}&step=styrelsebeslut&on=2012-08-21&role=sekreterare&fact.organ=Landstingsstyrelsen")),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains(r#"id="f-fact-protokoll-error""#), "{}", r.body);
    let protokoll = r.body.split(r#"id="f-fact-protokoll""#).nth(1).unwrap().split('>').next().unwrap();
    assert!(protokoll.contains("required"), "a required fact's field says so: {protokoll}");
    assert!(r.body.contains(r#"aria-invalid="true""#));
    // In the page's language: Swedish by default, the rule's code as it is.
    assert!(r.body.contains("den obligatoriska uppgiften &quot;protokoll&quot;"), "{}", r.body);
    assert!(r.body.contains("Ange uppgiften protokoll: ORGAN|DATUM|§"), "{}", r.body);
    assert!(r.body.contains("(missing-fact)") && !r.body.contains("required fact"), "{}", r.body);
    let en = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &format!("{cookie}; lang=en")), ("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("csrf={csrf}&step=styrelsebeslut&on=2012-08-21&role=sekreterare&fact.organ=Landstingsstyrelsen")),
    );
    assert_eq!(en.status, 422, "{}", en.body);
    assert!(en.body.contains("required fact &quot;protokoll&quot;"), "{}", en.body);
    assert!(en.body.contains("Give the fact protokoll: BODY|DATE|§") && !en.body.contains("obligatoriska"));
    // A field the form checks itself (a date that does not exist) says so in Swedish too.
    let r = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &cookie), ("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("csrf={csrf}&step=styrelsebeslut&on=2012-02-30&role=sekreterare")),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("&quot;2012-02-30&quot; är inte ett datum som finns"), "{}", r.body);
    assert_eq!(s.head(), head);
    // A deviation typed on two lines: the browser sends CRLF, the log keeps one line break.
    let r = s.request(
        "POST",
        "/instances/ljl-2012-styrsystem/record",
        &[("cookie", &cookie), ("content-type", "application/x-www-form-urlencoded")],
        Some(&format!(
            "csrf={csrf}&step=styrelsebeslut&on=2012-08-21&role=sekreterare&fact.organ=Landstingsstyrelsen\
             &deviation=Protokollet+justeras%0D%0An%C3%A4sta+vecka"
        )),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let auth = format!("Bearer {}", s.token);
    let inst = s.request("GET", "/api/instances/ljl-2012-styrsystem", &[("authorization", &auth)], None);
    let last = inst.json()["timeline"]["entries"].as_array().unwrap().last().unwrap().to_string();
    assert!(last.contains(r#""Protokollet justeras\nnästa vecka""#), "{last}");
    // The timeline's texts in English when the address asks for it.
    let en = s.request("GET", "/api/instances/ljl-2012-styrsystem?lang=en", &[("authorization", &auth)], None);
    let first = |r: &Resp| r.json()["timeline"]["entries"][0]["what"].as_str().unwrap().to_string();
    assert!(first(&en).starts_with("Started"), "{}", first(&en));
    assert!(first(&inst).starts_with("Startad"), "Swedish unless asked: {}", first(&inst));
    // The login form has its own CSRF token (a cookie and a field).
    let r = s.request(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(&format!("login=eva&password={PASSWORD}")),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let page = s.request("GET", "/login", &[], None);
    let token = page.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    let value = token.split('=').nth(1).unwrap().to_string();
    let r = s.request(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded"), ("cookie", &token)],
        Some(&format!("csrf={value}&login=eva&password=wrong-password&next=/")),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("Fel användarnamn eller lösenord"), "{}", r.body);
    assert!(r.body.contains("Det gick inte att logga in") && !r.body.contains("att spara"), "{}", r.body);
    assert!(r.body.contains(r#"autocomplete="username""#), "{}", r.body);
    let r = s.request(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded"), ("cookie", &token)],
        Some(&format!("csrf={value}&login=eva&password={}&next=//evil.example", PASSWORD)),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/"), "never redirected off the site");
    // The login form says when the locked login may try again, too.
    let r = s.request(
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded"), ("cookie", &token)],
        Some(&format!("csrf={value}&login=pl&password={PASSWORD}&next=/")),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    let secs: u64 = r.header("retry-after").expect("Retry-After on a 429").parse().unwrap();
    assert!((800..=900).contains(&secs), "{secs}");
    assert!(r.body.contains("Försök igen om"), "{}", r.body);

    // Logging out ends the session.
    let r = s.request("DELETE", "/api/session", &[("cookie", &cookie), ("x-csrf-token", &csrf)], None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&s.request("GET", "/api/me", &[("cookie", &cookie)], None), 401, "unauthorized");
}

#[test]
fn pages_public_view_reports_and_live_updates() {
    let s = Server::start();
    // The public view shows no personal data: no person facts, no actor names.
    let public = s.request("GET", "/instances/ljl-2012-styrsystem", &[], None);
    assert_eq!(public.status, 200);
    assert!(public.body.contains("LJ2012/896"));
    let (cookie, _) = s.login("eva");
    let signed_in = s.request("GET", "/instances/ljl-2012-styrsystem", &[("cookie", &cookie)], None);
    for personal in ["Tommy Bernevång Forsberg", "Rekonstruktion ur källa 000", "2011-06-26"] {
        assert!(signed_in.body.contains(personal), "logged in, the timeline shows {personal}");
    }
    for personal in ["Tommy Bernevång Forsberg", "Rekonstruktion ur källa 000", "Protokollet är daterat"] {
        assert!(!public.body.contains(personal), "the public view hides {personal}");
    }
    assert!(public.body.contains("Avvikelse"), "the public view flags the deviation");
    // Swedish by default; English by ?lang=en, then by its cookie, or by Accept-Language.
    let en = s.request("GET", "/?lang=en", &[], None);
    assert!(en.body.contains("<html lang=\"en\">") && en.body.contains("Overview"));
    assert!(en.header("set-cookie").unwrap().starts_with("lang=en"));
    assert!(s.request("GET", "/", &[("cookie", "lang=en")], None).body.contains("Overview"));
    assert!(s.request("GET", "/", &[("accept-language", "en-GB,en;q=0.9")], None).body.contains("Overview"));
    let sv = s.request("GET", "/", &[("accept-language", "sv-SE,sv;q=0.9,en;q=0.5")], None);
    assert!(sv.body.contains("<html lang=\"sv\">") && sv.body.contains("försenade steg"));

    // Reports: the deadlines are public (also as a calendar); the others need a login.
    let ics = s.request("GET", "/reports/deadlines?format=ics", &[], None);
    assert_eq!(ics.status, 200);
    assert!(ics.header("content-type").unwrap().starts_with("text/calendar"));
    assert!(ics.body.starts_with("BEGIN:VCALENDAR"));
    let r = s.request("GET", "/reports/audit?instance=harryda-2012", &[], None);
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login?next="));
    let csv = s.request("GET", "/reports/audit?instance=harryda-2012&format=csv", &[("cookie", &cookie)], None);
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.header("content-disposition").unwrap().contains("attachment"));
    assert!(csv.body.lines().count() > 2);
    let md =
        s.request("GET", "/reports/annual?org=H%C3%A4rryda+kommun&year=2012&format=md", &[("cookie", &cookie)], None);
    assert!(md.body.starts_with("# "), "{}", md.body);
    assert_eq!(
        md.header("content-disposition"),
        Some(r#"attachment; filename="styrlogg-annual-harryda-kommun-2012.md""#),
        "a download's name says what it covers"
    );
    let view = s.request("GET", "/reports/compliance?instance=harryda-2012", &[("cookie", &cookie)], None);
    assert_eq!(view.status, 200);
    assert!(view.body.contains("<table>") && view.body.contains("format=json"));
    let as_of = s.request("GET", "/reports/dialogues?as_of=2012-01-01", &[("cookie", &cookie)], None);
    assert_eq!(as_of.status, 200);
    let bad = s.request("GET", "/reports/annual?org=X&year=abc", &[("cookie", &cookie)], None);
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("1900"), "{}", bad.body);
    let twice = s.request("GET", "/reports/deadlines?org=A&org=B", &[("cookie", &cookie)], None);
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert!(twice.body.contains("adressens parametrar gick inte att läsa"), "{}", twice.body);
    // What axum itself refuses on a page is a page too, in the reader's language.
    for (method, path, status, says) in [
        ("GET", "/instances/%FF", 400, "Adressen gick inte att läsa"),
        ("GET", "/?partial=1&partial=0", 400, "Adressen gick inte att läsa"),
        ("GET", "/instances/harryda-2012/record?step=a&step=b", 400, "Adressen gick inte att läsa"),
        ("GET", "/logout", 405, "Sidan tar inte emot GET"),
        ("POST", "/deadlines?lang=en", 405, "This page does not take POST"),
    ] {
        let r = s.request(method, path, &[("cookie", &cookie)], None);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(r.body.starts_with("<!DOCTYPE html>") && r.body.contains(says), "{method} {path}: {}", r.body);
    }
    // A report of nothing in the log: 404, in the page's language, without the command line's advice.
    let none = s.request("GET", "/reports/deadlines?org=Ingenstans+kommun", &[("cookie", &cookie)], None);
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(none.body.contains("ingen instans för organisationen &quot;Ingenstans kommun&quot;"), "{}", none.body);
    assert!(!none.body.contains("styrlogg status"), "{}", none.body);
    let none =
        s.request("GET", "/reports/compliance?instance=nope&as_of=2012-01-01&lang=en", &[("cookie", &cookie)], None);
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(none.body.contains("no instance nope in the log as known on 2012-01-01"), "{}", none.body);
    let auth = format!("Bearer {}", s.token);
    let api = s.request("GET", "/api/reports/compliance?instance=harryda-2012", &[("authorization", &auth)], None);
    assert_eq!(api.json()["instance"], "harryda-2012");
    assert_error(&s.request("GET", "/api/reports/nonsense", &[("authorization", &auth)], None), 404, "not-found");
    let r = s.request("GET", "/api/reports/annual?org=X&year=abc", &[("authorization", &auth)], None);
    assert_error(&r, 400, "invalid-input");
    let openapi = s.request("GET", "/api/openapi.json", &[], None).json();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    assert!(openapi["paths"]["/api/instances/{id}/steps"]["post"].is_object());
    // Every status the report endpoint answers is documented.
    let documented = &openapi["paths"]["/api/reports/{kind}"]["get"]["responses"];
    for status in ["200", "400", "401", "404"] {
        assert!(documented[status].is_object(), "openapi.json lists {status} for /api/reports/{{kind}}");
    }
    // Every code an error can carry is named in its description.
    let described = openapi["info"]["description"].as_str().unwrap();
    let web_codes = [
        "unauthorized",
        "wrong-credentials",
        "too-many-attempts",
        "too-many-sessions",
        "csrf-failed",
        "role-not-held",
        "org-not-allowed",
        "not-found",
        "method-not-allowed",
        "invalid-input",
        "body-too-large",
        "unsupported-media-type",
        "instance-exists",
        "conflict",
        "refused",
        "store-error",
        "internal-error",
    ];
    let rule_codes = workflows::Rule::ALL.iter().map(|r| r.code());
    for code in web_codes.into_iter().chain(rule_codes) {
        let named = described.split(|c: char| !(c.is_ascii_lowercase() || c == '-')).any(|w| w == code);
        assert!(named, "openapi.json's description names the error code {code}");
    }

    // Live: the event stream says the head, and again when an event arrives.
    let mut stream = TcpStream::connect(&s.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).unwrap();
    let mut reader = BufReader::new(stream);
    let mut next_head = || loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
        if let Some(d) = line.trim().strip_prefix("data: ") {
            return d.parse::<u64>().unwrap();
        }
    };
    let first = next_head();
    let (cookie, csrf) = s.login("eva");
    let r = json_post(&s, "/api/instances", &[("cookie", &cookie), ("x-csrf-token", &csrf)], START);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(next_head(), first + 1);
}

#[test]
fn downloads_escape_what_users_typed() {
    let s = Server::start();
    let (cookie, csrf) = s.login("eva");
    let eva = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    // An organisation a spreadsheet would take for a formula.
    let formula = r#"=HYPERLINK("http://evil.example","Klicka")"#;
    let start = START.replace("Vaxholms stad", &formula.replace('"', "\\\""));
    let r = json_post(&s, "/api/instances", &eva, &start);
    assert_eq!(r.status, 201, "{}", r.body);
    // HTML in a fact and in a deviation.
    let step = r#"{"step":"intresseanmalan","on":"2012-01-20","role":"sekreterare",
        "facts":[["kontaktperson","Anita Brynje|kontaktperson|official"],["organisation","<img src=x onerror=alert(1)>"]],
        "deviation":"</td><script>alert(2)</script>"}"#;
    let r = json_post(&s, "/api/instances/vaxholm-2012/steps", &eva, step);
    assert_eq!(r.status, 201, "{}", r.body);
    let prepared = r#"{"step":"beredning","on":"2012-08-14","role":"registrator",
        "facts":[["organ","<script>alert(1)</script>"],["behandling","Föreslår & <b>tillstyrker</b>"]]}"#;
    let r = json_post(&s, "/api/instances/vaxholm-2012/steps", &eva, prepared);
    assert_eq!(r.status, 201, "{}", r.body);

    // Markdown: the text as written, as character references; no HTML of the user's.
    let md = s.request("GET", "/reports/audit?instance=vaxholm-2012&format=md", &[("cookie", &cookie)], None);
    assert_eq!(md.status, 200, "{}", md.body);
    for raw in ["<script", "</script", "<img", "</td>", "<b>"] {
        assert!(!md.body.contains(raw), "{raw} is not in the Markdown:\n{}", md.body);
    }
    for escaped in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;",
        "Föreslår &amp; &lt;b&gt;tillstyrker&lt;/b&gt;",
    ] {
        assert!(md.body.contains(escaped), "{escaped} is in the Markdown:\n{}", md.body);
    }

    // CSV: a UTF-8 byte order mark first (Excel then reads å, ä, ö), and no
    // cell that begins as a formula.
    let csv = s.request("GET", "/reports/deadlines?format=csv", &[], None);
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let body = csv.body.strip_prefix('\u{feff}').expect("a byte order mark");
    assert!(body.starts_with("sista dag,"), "{body}");
    assert!(body.contains("'=HYPERLINK("), "the formula is neutralised: {body}");
    for line in body.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(!cell.starts_with(['=', '+', '@', '\t', '\r']), "{cell:?} in {line}");
        }
    }
}

#[test]
fn serves_a_log_on_jetstream() {
    let nats = crate::nats::NatsServer::start();
    // Over NATS the key store of personal data is named explicitly.
    let keys = tempfile::tempdir().unwrap();
    let keys = keys.path().join("keys");
    let s =
        Server::start_with(&["--nats", &nats.url, "--nats-stream", "WEBTEST", "--keys", keys.to_str().unwrap()], false);
    let (cookie, csrf) = s.login("eva");
    let eva = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = json_post(&s, "/api/instances", &eva, START);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = json_post(&s, "/api/instances/vaxholm-2012/steps", &eva, INTEREST);
    assert_eq!(r.status, 201, "{}", r.body);
    let page = s.request("GET", "/instances/vaxholm-2012", &[("cookie", &cookie)], None);
    assert!(page.body.contains("Anita Brynje"), "{}", page.body);
    assert_error(&json_post(&s, "/api/instances/vaxholm-2012/steps", &eva, BOARD_INCOMPLETE), 422, "missing-fact");
    assert!(s.head().contains("\"position\":2"), "{}", s.head());
}

#[test]
fn user_command_refuses_weak_passwords_and_never_prints_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_styrlogg"))
        .arg("--data")
        .arg(&data)
        .args(["--users", users.to_str().unwrap(), "user", "add", "kort", "--role", "sekreterare"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
    assert!(!users.exists(), "nothing written");
    add_user(&data, &["--users", users.to_str().unwrap(), "user", "add", "eva", "--role", "sekreterare"], PASSWORD);
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains(PASSWORD));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&users).unwrap().permissions().mode() & 0o777, 0o600);
    let list = styrlogg(&data, &["--users", users.to_str().unwrap(), "user", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("eva"));
    assert!(!String::from_utf8_lossy(&list.stdout).contains("argon2"));
    // A reader that went away ends the list as it ends every output.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let gone = crate::cli::command(&data, &["--users", users.to_str().unwrap(), "user", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(141), "{}", String::from_utf8_lossy(&gone.stderr));
    let again = styrlogg(&data, &["--users", users.to_str().unwrap(), "user", "add", "eva", "--role", "registrator"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));
    // A role no workflow has is a typo, refused before the password is asked.
    let before = std::fs::read(&users).unwrap();
    for args in [&["user", "add", "bo", "--role", "sekreterar"][..], &["user", "token", "robot", "--role", "kung"][..]]
    {
        let typo = styrlogg(&data, &[&["--users", users.to_str().unwrap()][..], args].concat());
        assert_eq!(typo.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&typo.stderr);
        assert!(
            err.contains("is not a role of any workflow definition") && err.contains("sekreterare"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&users).unwrap(), before, "the users file is untouched");
}

#[test]
fn serve_runs_the_reminder_service_in_process() {
    let refused = styrlogg(Path::new("/nonexistent/styrlogg"), &["--today", TODAY, "serve", "--remind"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot run with --today"));

    // As of the real today every deadline of the demo's histories has long
    // passed: the service in the server records each missed one, once.
    let s = Server::start_full(&[], &["--remind"], true);
    let auth = format!("Bearer {}", s.token);
    let mut kinds = Vec::new();
    for _ in 0..300 {
        let r = s.request("GET", "/api/reports/audit", &[("authorization", &auth)], None);
        kinds =
            r.json()["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect();
        if kinds.iter().any(|k| k == "deadline_missed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(kinds.iter().any(|k| k == "deadline_missed"), "the reminder service recorded missed deadlines: {kinds:?}");
}

/// `styrlogg user` changes reach a running server at once: a removed
/// user's session ends and the login is refused, a replaced token or
/// password stops working (and its sessions end), a new user logs in; a
/// hand edit that does not read leaves the users read before in force.
#[test]
fn user_changes_take_effect_on_a_running_server() {
    let s = Server::start_with(&[], false);
    let users = s.users.to_str().unwrap().to_string();
    let user = |args: &[&str]| styrlogg(&s.data, &[&["--users", &users, "user"][..], args].concat());
    let me = |auth: (&str, &str)| s.request("GET", "/api/me", &[auth], None).status;
    let (pl, _) = s.login("pl");
    let (eva, _) = s.login("eva");
    assert_eq!(me(("cookie", &pl)), 200);

    assert!(user(&["remove", "pl"]).status.success());
    assert_error(&s.request("GET", "/api/me", &[("cookie", &pl)], None), 401, "unauthorized");
    let right = format!(r#"{{"login":"pl","password":"{PASSWORD}"}}"#);
    assert_error(&json_post(&s, "/api/session", &[], &right), 401, "wrong-credentials");
    assert_eq!(me(("cookie", &eva)), 200, "other sessions go on");

    let old = format!("Bearer {}", s.token);
    assert_eq!(me(("authorization", &old)), 200);
    let out = user(&["token", "diariet", "--role", "registrator", "--replace"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(me(("authorization", &old)), 401, "the replaced token stops working");
    assert_eq!(me(("authorization", &new)), 200);

    let users_arg = ["--users", users.as_str(), "user", "add", "eva", "--role", "sekreterare", "--replace"];
    add_user(&s.data, &users_arg, "ett-nytt-lösenord-2");
    assert_eq!(me(("cookie", &eva)), 401, "a new password ends the sessions opened with the old one");
    assert_error(
        &json_post(&s, "/api/session", &[], r#"{"login":"eva","password":"rätt-lösenord-1"}"#),
        401,
        "wrong-credentials",
    );
    let r = json_post(&s, "/api/session", &[], r#"{"login":"eva","password":"ett-nytt-lösenord-2"}"#);
    assert_eq!(r.status, 200, "{}", r.body);

    add_user(&s.data, &["--users", users.as_str(), "user", "add", "ny", "--role", "projektledare"], PASSWORD);
    let (ny, _) = s.login("ny");
    assert_eq!(me(("cookie", &ny)), 200);

    let kept = std::fs::read_to_string(&s.users).unwrap();
    std::fs::write(&s.users, kept.replace("[users.ny]", "[users.ny")).unwrap();
    assert_eq!(me(("cookie", &ny)), 200, "a file that does not read changes nothing");
    assert_eq!(me(("authorization", &new)), 200);
    assert!(user(&["remove", "ny"]).status.code() != Some(0), "the command refuses the broken file too");

    // The file deleted: no one is let in, and the log says why.
    std::fs::remove_file(&s.users).unwrap();
    assert_eq!(me(("cookie", &ny)), 401);
    assert_eq!(me(("authorization", &new)), 401);
    let log = std::fs::read_to_string(s._dir.path().join("server.log")).unwrap();
    assert!(log.contains("is gone: no one can log in until it is back"), "{log}");
}

/// `styrlogg user` commands run at once each change the file in turn: no
/// change is lost (a removal that reported success stays done), and a
/// users file that is a symbolic link stays one, its target changed.
#[test]
fn user_commands_at_once_lose_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let real = dir.path().join("real-users.toml");
    let users = dir.path().join("users.toml");
    std::os::unix::fs::symlink(&real, &users).unwrap();
    let u = users.to_str().unwrap();
    add_user(&data, &["--users", u, "user", "add", "olle", "--role", "styrgrupp"], PASSWORD);
    assert!(std::fs::symlink_metadata(&users).unwrap().file_type().is_symlink(), "the link is kept");
    let mut children = Vec::new();
    for i in 0..8 {
        let login = format!("c{i}");
        children.push(spawn_user(&data, &["--users", u, "user", "add", &login, "--role", "sekreterare"], PASSWORD));
    }
    children.push(spawn_user(&data, &["--users", u, "user", "remove", "olle"], ""));
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let list = String::from_utf8(styrlogg(&data, &["--users", u, "user", "list"]).stdout).unwrap();
    for i in 0..8 {
        assert!(list.contains(&format!("user  c{i} ")), "c{i} lost:\n{list}");
    }
    assert!(!list.contains("olle"), "the removal stays done:\n{list}");
    assert!(std::fs::symlink_metadata(&users).unwrap().file_type().is_symlink());
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// A new API token that cannot be shown (standard output closed) is not
/// saved: its secret is shown only once, and no one would have it.
#[test]
fn a_token_that_cannot_be_shown_is_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let users = dir.path().join("users.toml");
    let args = ["--users", users.to_str().unwrap(), "user", "token", "diariet", "--role", "registrator"];
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = crate::cli::command(&data, &args).stdout(writer).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token diariet was not saved"), "{out:?}");
    let list = styrlogg(&data, &["--users", users.to_str().unwrap(), "user", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("diariet"), "{list:?}");
    let shown = styrlogg(&data, &args);
    assert!(shown.status.success(), "{shown:?}");
    assert!(!String::from_utf8_lossy(&shown.stdout).trim().is_empty(), "the token, once");
}

/// The value of the first `<option ... selected>` of a select named `name`.
fn selected(page: &str, name: &str) -> String {
    let select = page.split(&format!(r#"name="{name}""#)).nth(1).unwrap_or_else(|| panic!("a select {name}: {page}"));
    let option = select.split("<option").find(|o| o.contains("selected")).unwrap_or_else(|| panic!("a choice: {page}"));
    option.split(r#"value=""#).nth(1).and_then(|v| v.split('"').next()).unwrap().to_string()
}

#[test]
fn corrections_and_deadline_changes_have_forms() {
    let s = Server::start();
    let (cookie, csrf) = s.login("eva");
    let form = [("cookie", cookie.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let id = "ljl-2012-styrsystem";
    let page = s.request("GET", &format!("/instances/{id}"), &[("cookie", &cookie)], None);
    assert_eq!(page.status, 200);
    // Each recorded step links to its correction form.
    let link = page.body.split(&format!(r#"href="/instances/{id}/correct?event="#)).nth(1).expect("a correction link");
    let event = link.split('"').next().unwrap().to_string();
    assert_eq!(event.len(), 32, "{event}");
    let f = s.request("GET", &format!("/instances/{id}/correct?event={event}"), &[("cookie", &cookie)], None);
    assert_eq!(f.status, 200, "{}", f.body);
    assert!(f.body.contains("<h1>Rätta: ") && f.body.contains("originalet står kvar i loggen"), "{}", f.body);
    // The short id the reports print opens the same form.
    let short =
        s.request("GET", &format!("/instances/{id}/correct?event={}", &event[..12]), &[("cookie", &cookie)], None);
    assert_eq!(short.status, 200, "{}", short.body);
    assert!(
        short.body.contains(&format!(r#"name="event" value="{event}""#)),
        "the whole id in the form: {}",
        short.body
    );
    let role = selected(&f.body, "role");
    let position = || serde_json::from_str::<serde_json::Value>(&s.head()).unwrap()["position"].as_u64().unwrap();
    let head = position();
    // No reason: refused on the form, next to its field, nothing written.
    let post = |path: &str, body: String| s.request("POST", path, &form, Some(&body));
    let r = post(&format!("/instances/{id}/correct"), format!("csrf={csrf}&event={event}&reason=&role={role}"));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains(r##"href="#f-reason""##) && r.body.contains("motiveringen är tom"), "{}", r.body);
    // An event of another instance is not corrected through this one's form.
    let other = s.request("GET", "/instances/harryda-2012", &[("cookie", &cookie)], None);
    let theirs = other.body.split("/correct?event=").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = post(&format!("/instances/{id}/correct"), format!("csrf={csrf}&event={theirs}&reason=Fel&role={role}"));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(position(), head, "refused corrections write nothing");
    let r = post(
        &format!("/instances/{id}/correct"),
        format!("csrf={csrf}&event={event}&reason=Fel+datum+i+protokollet&date=2012-02-01&role={role}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(position(), head + 1);
    let after = s.request("GET", &format!("/instances/{id}"), &[("cookie", &cookie)], None);
    assert!(after.body.contains(&format!("Rättelse av</span> <code>{}", &event[..12])), "{}", after.body);

    // A pending deadline links to the form that extends or waives it.
    let link = after.body.split(&format!(r#"href="/instances/{id}/deadline?step="#)).nth(1).expect("a deadline link");
    let step = link.split('"').next().unwrap().to_string();
    let f = s.request("GET", &format!("/instances/{id}/deadline?step={step}&lang=en"), &[("cookie", &cookie)], None);
    assert_eq!(f.status, 200, "{}", f.body);
    assert!(f.body.contains("Last day now"), "{}", f.body);
    let role = selected(&f.body, "role");
    let path = format!("/instances/{id}/deadline");
    let r = post(&path, format!("csrf={csrf}&step={step}&extend_to=2000-01-01&reason=Anst%C3%A5nd&role={role}"));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("(not-an-extension)"), "{}", r.body);
    let r = post(&path, format!("csrf={csrf}&step={step}&reason=Anst%C3%A5nd&role={role}"));
    assert_eq!(r.status, 400, "neither a date nor waive: {}", r.body);
    assert_eq!(position(), head + 1, "refused changes write nothing");
    let r = post(&path, format!("csrf={csrf}&step={step}&waive=yes&reason=Utg%C3%A5r+enligt+SKL&role={role}"));
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(position(), head + 2);
    let f = s.request("GET", &format!("/instances/{id}/deadline?step={step}"), &[("cookie", &cookie)], None);
    assert_eq!(f.status, 404, "a waived deadline is no longer pending: {}", f.body);
    // Without a session the forms send to the login page.
    let r = s.request("GET", &format!("/instances/{id}/correct?event={event}"), &[], None);
    assert_eq!(r.status, 303, "{}", r.body);
    // One who may record only for another organisation is offered no form here.
    let users = s.users.to_str().unwrap().to_string();
    add_user(
        &s.data,
        &["--users", &users, "user", "add", "tyreso", "--role", "sekreterare", "--org", "Tyresö kommun"],
        PASSWORD,
    );
    let (other, _) = s.login("tyreso");
    let page = s.request("GET", &format!("/instances/{id}"), &[("cookie", &other)], None);
    assert_eq!(page.status, 200);
    for link in ["/record\"", "/correct?event=", "/deadline?step="] {
        assert!(!page.body.contains(&format!("/instances/{id}{link}")), "no {link} link: {}", page.body);
    }
    for path in [
        format!("/instances/{id}/record"),
        format!("/instances/{id}/correct?event={event}"),
        format!("/instances/{id}/deadline?step=projektplan"),
    ] {
        let r = s.request("GET", &path, &[("cookie", &other)], None);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("tyreso får bara registrera för: Tyresö kommun"), "{path}: {}", r.body);
    }
    let head = position();
    let (_, other_csrf) = s.login("tyreso");
    let as_other = [("cookie", other.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let other_post = |path: String, body: String| s.request("POST", &path, &as_other, Some(&body));
    let r = other_post(
        format!("/instances/{id}/correct"),
        format!("csrf={other_csrf}&event={event}&reason=Fel&date=2012-02-02&role=sekreterare"),
    );
    assert_eq!(r.status, 403, "a post by one who may not record here: {}", r.body);
    let r = other_post(
        format!("/instances/{id}/deadline"),
        format!("csrf={other_csrf}&step=projektplan&waive=yes&reason=Fel&role=sekreterare"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // Without the form's CSRF token nothing is done.
    let r =
        post(&format!("/instances/{id}/correct"), format!("event={event}&reason=Fel&date=2012-02-02&role=sekreterare"));
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(
        &format!("/instances/{id}/deadline"),
        "csrf=wrong&step=projektplan&waive=yes&reason=Fel&role=sekreterare".to_string(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A step with no pending deadline has no form, and a post for it is refused as such.
    let r = s.request("GET", &format!("/instances/{id}/deadline?step=nosuchstep"), &[("cookie", &cookie)], None);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post(
        &format!("/instances/{id}/deadline"),
        format!("csrf={csrf}&step=intresseanmalan&waive=yes&reason=Fel&role=sekreterare"),
    );
    assert!(r.status >= 400 && !r.body.contains("Sidan finns inte"), "said as what it is: {} {}", r.status, r.body);
    // The start of an instance is no recorded step: no correction form for it.
    let start =
        page.body.split(r#"id="e"#).nth(1).and_then(|e| e.split("<code>").nth(1)).and_then(|c| c.split('<').next());
    let start = start.expect("the first event's id").to_string();
    assert!(start.len() == 32 && start.bytes().all(|b| b.is_ascii_hexdigit()), "{start}");
    assert!(page.body.contains("Instansen startades") || page.body.contains("Startad"), "the first event is the start");
    let r = s.request("GET", &format!("/instances/{id}/correct?event={start}"), &[("cookie", &cookie)], None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(position(), head, "nothing refused was written");
}
