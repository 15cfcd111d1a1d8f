//! Test helper: a real moto S3 server on a free port, stopped by PID on drop. Looks for
//! `$MOTO_SERVER_BIN`, then `/tmp/motovenv/bin/moto_server`, then `moto_server` on PATH,
//! and fails with install instructions when none exists.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
}

pub const INSTALL: &str = "moto S3 server not found: install it with `python3 -m venv /tmp/motovenv && \
/tmp/motovenv/bin/pip install 'moto[server]>=5.2.5'` and/or set MOTO_SERVER_BIN=/tmp/motovenv/bin/moto_server";

fn find_bin() -> Option<String> {
    if let Ok(b) = std::env::var("MOTO_SERVER_BIN") {
        return Some(b);
    }
    if std::path::Path::new("/tmp/motovenv/bin/moto_server").exists() {
        return Some("/tmp/motovenv/bin/moto_server".into());
    }
    let on_path = Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
    on_path.ok().filter(|s| s.success()).map(|_| "moto_server".into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    pub fn start() -> Moto {
        Self::start_inner(None)
    }

    /// Start with SigV4 checking after the first `free_actions` requests
    /// (`INITIAL_NO_AUTH_ACTION_COUNT`), so IAM policies are enforced for IAM keys.
    pub fn start_with_auth(free_actions: u32) -> Moto {
        Self::start_inner(Some(free_actions))
    }

    fn start_inner(free_actions: Option<u32>) -> Moto {
        let bin = find_bin().unwrap_or_else(|| panic!("{INSTALL}"));
        let port = free_port();
        let mut cmd = Command::new(&bin);
        if let Some(n) = free_actions {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}. {INSTALL}"));
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {port} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn request(&self, method: &str, path: &str, headers: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{method} {path}: {resp}");
        resp
    }

    /// Create a bucket with an unsigned request (counts as one free action).
    pub fn create_bucket(&self, name: &str) {
        self.request("PUT", &format!("/{name}"), "", "");
    }

    /// Create an IAM user allowed only `s3:PutObject` on `bucket/*` and return its
    /// (access key id, secret). Uses three free (unsigned) actions.
    pub fn put_only_user(&self, bucket: &str) -> (String, String) {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}"#
        );
        self.user_with_policy("uploader", &policy)
    }

    /// Create an IAM user with full access to S3 (tests read objects back with it). Uses
    /// three free actions.
    pub fn admin_user(&self) -> (String, String) {
        self.user_with_policy(
            "admin",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
        )
    }

    fn user_with_policy(&self, user: &str, policy: &str) -> (String, String) {
        let h = "Content-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 \
                 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n";
        let v = format!("Version=2010-05-08&UserName={user}");
        self.request("POST", "/", h, &format!("Action=CreateUser&{v}"));
        self.request(
            "POST",
            "/",
            h,
            &format!("Action=PutUserPolicy&{v}&PolicyName=policy-{user}&PolicyDocument={}", urlencode(policy)),
        );
        let r = self.request("POST", "/", h, &format!("Action=CreateAccessKey&{v}"));
        let tag = |t: &str| r.split(&format!("<{t}>")).nth(1).and_then(|x| x.split('<').next()).unwrap().to_string();
        (tag("AccessKeyId"), tag("SecretAccessKey"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill(); // this child's PID only
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
