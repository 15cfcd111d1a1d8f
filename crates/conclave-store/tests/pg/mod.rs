//! A throwaway PostgreSQL server for tests: no root, no network, no system service.
//!
//! `initdb` into a temporary directory, then `postgres -D dir -k dir -p PORT -h 127.0.0.1`
//! on a free loopback port, trust authentication for the superuser `conclave`. Stopped by PID
//! (fast shutdown) on drop, and the directory removed. It uses Debian's binaries
//! (`/usr/lib/postgresql/<version>/bin`, version 15 preferred; `CONCLAVE_PG_BIN` overrides
//! the directory). PostgreSQL refuses to run as root, so when the tests run as root the server
//! runs as `nobody` (through `setpriv`) in a directory owned by it. `setpriv --pdeathsig`
//! also stops the server if the test process dies without dropping it. That signal follows the
//! thread that started the server: start it from the test's own thread.
//!
//! Other test crates include this file with `#[path = "…/conclave-store/tests/pg/mod.rs"]`;
//! it needs only `std` and the `tempfile` crate.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser created by initdb.
pub const USER: &str = "conclave";
const NOBODY: u32 = 65534;

pub struct Postgres {
    child: Child,
    port: u16,
    bin: PathBuf,
    /// Holds `data/` (the cluster), the Unix socket and `postgres.log`.
    dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `postgres`, or `None` when PostgreSQL is not installed.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CONCLAVE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").exists() {
        return Some(preferred);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    // The effective UID, without a libc dependency: /proc/self is owned by it.
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc is mounted")) == 0
}

fn have_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program` as a command that runs as `nobody` when we are root, and dies with its parent.
fn command(program: &Path, die_with_parent: bool) -> Command {
    let root = is_root();
    if root || (die_with_parent && have_setpriv()) {
        let mut c = Command::new("setpriv");
        if root {
            c.args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"), "--clear-groups".into()]);
        }
        if die_with_parent {
            c.arg("--pdeathsig=INT");
        }
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// Initializes and starts a server; panics with the reason (and the server's log) when it
    /// cannot, including when PostgreSQL is not installed (scripts/test installs it).
    pub fn start() -> Postgres {
        let bin = bin_dir().expect("PostgreSQL is not installed: no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql, or run scripts/test; CONCLAVE_PG_BIN overrides)");
        let dir = tempfile::Builder::new().prefix("conclave-pg.").tempdir().expect("temp dir");
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown the temp dir to nobody");
        }
        let data = dir.path().join("data");
        let out = command(&bin.join("initdb"), false)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A port picked free can be taken before the server binds it: try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("postgres.log")).expect("create the log");
            if is_root() {
                std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(NOBODY), Some(NOBODY))
                    .expect("chown the log");
            }
            let mut child = command(&bin.join("postgres"), true)
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(dir.path())
                .args(["-p", &port.to_string(), "-h", "127.0.0.1"])
                // A test database: durability is not the point.
                .args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=32MB",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn postgres");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: most likely the port was taken; try another
                }
                if TcpStream::connect_timeout(
                    &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
                    && Self::ready(&bin, port)
                {
                    return Postgres { child, port, bin, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last_log = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default();
        }
        panic!("PostgreSQL did not start; its log:\n{last_log}");
    }

    fn ready(bin: &Path, port: u16) -> bool {
        Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", USER, "-d", "postgres"])
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The cluster's data directory (for tests that look at the bytes on disk).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs SQL with `psql` (stops on the first error) and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: it ends the sessions and exits.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
