//! Test harness: runs the real `conclave` binary on a loopback port it picks, captures its
//! logs to a file, and stops it by PID (SIGTERM, then SIGKILL) when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_conclave");

pub fn conclave(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_remove("CONCLAVE_MASTER_KEY").output().expect("run conclave")
}

pub struct Project {
    pub api_key: String,
    pub api_secret: String,
}

pub fn create_project(data_dir: &Path) -> Project {
    let out = conclave(&["project", "create", "--json", "--data-dir", data_dir.to_str().unwrap()]);
    assert!(out.status.success(), "project create: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = Project {
        api_key: v["api_key"].as_str().unwrap().into(),
        api_secret: v["api_secret"].as_str().unwrap().into(),
    };
    remember_secret(&p.api_secret);
    p
}

/// Every secret a test handed to a server: no server log may ever contain one (checked when
/// each `Server` is dropped, so over the whole test run).
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn remember_secret(secret: &str) {
    SECRETS.lock().unwrap_or_else(|p| p.into_inner()).push(secret.to_owned());
}

/// Panics if `logs` contain any remembered secret.
pub fn assert_no_secret_in(logs: &str, what: &str) {
    for s in SECRETS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        assert!(!logs.contains(s.as_str()), "a secret appeared in {what}");
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
    pub data_dir: PathBuf,
}

impl Server {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_scheme(data_dir, extra, "http")
    }

    /// Starts on `127.0.0.1:0`; the server prints the port it bound on stdout.
    pub fn start_scheme(data_dir: &Path, extra: &[&str], scheme: &str) -> Server {
        Self::start_with(data_dir, "127.0.0.1:0", extra, scheme, &[])
    }

    /// Starts with a hard and soft limit of `nofile` open descriptors (the server can raise
    /// its soft limit only up to the hard one).
    pub fn start_with_nofile(data_dir: &Path, extra: &[&str], nofile: u64) -> Server {
        Self::spawn(data_dir, "127.0.0.1:0", extra, "http", &[], Some(nofile))
    }

    /// Starts on `listen` with extra environment variables (cluster nodes share a master key).
    pub fn start_with(data_dir: &Path, listen: &str, extra: &[&str], scheme: &str, env: &[(&str, &str)]) -> Server {
        Self::spawn(data_dir, listen, extra, scheme, env, None)
    }

    fn spawn(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        scheme: &str,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Server {
        let log = data_dir.with_extension(format!("{}.log", free_port()));
        let mut args = vec!["serve", "--data-dir", data_dir.to_str().unwrap(), "--listen", listen];
        args.extend(extra);
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .env("CONCLAVE_LOG", "debug,sqlx=warn")
            .env_remove("CONCLAVE_MASTER_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let Ok(base) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        };
        assert!(base.starts_with(scheme), "{base}");
        Server { child, base, log, data_dir: data_dir.to_owned() }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if !std::thread::panicking() {
            assert_no_secret_in(&self.logs(), "a server log");
        }
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub fn rest_jwt(p: &Project) -> String {
    conclave_core::rest_auth::mint(&p.api_key, p.api_secret.as_bytes(), now(), 300)
}

/// `METHOD {base}/v2/project/{apiKey}/{path}` with a fresh REST credential of `p`: the status
/// and the JSON answer (`Null` when there is none).
pub async fn rest_call(
    base: &str,
    p: &Project,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{base}/v2/project/{}/{path}", p.api_key))
        .header("X-OPENTOK-AUTH", rest_jwt(p));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Registers a webhook callback over REST, as the SDKs' `registerCallback` does.
pub async fn register_callback(
    base: &str,
    p: &Project,
    group: &str,
    event: &str,
    url: &str,
) -> (u16, serde_json::Value) {
    rest_call(
        base,
        p,
        reqwest::Method::POST,
        "callback",
        Some(serde_json::json!({"group": group, "event": event, "url": url})),
    )
    .await
}

/// A webhook receiver on loopback: answers 500 to the first `fail_first` calls, then 200.
#[derive(Default)]
pub struct Received {
    /// (status we answered, auth header, body)
    pub calls: Vec<(u16, String, Vec<u8>)>,
}

pub async fn receiver(fail_first: usize) -> (String, std::sync::Arc<std::sync::Mutex<Received>>) {
    receiver_on("127.0.0.1:0", fail_first).await
}

pub async fn receiver_on(addr: &str, fail_first: usize) -> (String, std::sync::Arc<std::sync::Mutex<Received>>) {
    let state = std::sync::Arc::new(std::sync::Mutex::new(Received::default()));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut r = s.lock().unwrap();
                let status = if r.calls.len() < fail_first { 500 } else { 200 };
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                r.calls.push((status, auth, body.to_vec()));
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}
