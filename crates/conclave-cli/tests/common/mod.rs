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
    Project { api_key: v["api_key"].as_str().unwrap().into(), api_secret: v["api_secret"].as_str().unwrap().into() }
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

    pub fn start_scheme(data_dir: &Path, extra: &[&str], scheme: &str) -> Server {
        let port = free_port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let mut args = vec!["serve", "--data-dir", data_dir.to_str().unwrap()];
        let listen = format!("127.0.0.1:{port}");
        args.extend(["--listen", &listen]);
        args.extend(extra);
        let child = Command::new(BIN)
            .args(&args)
            .env("CONCLAVE_LOG", "debug,sqlx=warn")
            .env_remove("CONCLAVE_MASTER_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let server = Server { child, base: format!("{scheme}://127.0.0.1:{port}"), log, data_dir: data_dir.to_owned() };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self.base.rsplit('/').next().unwrap().to_owned();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "server did not start: {}", self.logs());
            std::thread::sleep(Duration::from_millis(30));
        }
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
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

pub fn rest_jwt(p: &Project) -> String {
    conclave_core::rest_auth::mint(&p.api_key, p.api_secret.as_bytes(), now(), 300)
}
