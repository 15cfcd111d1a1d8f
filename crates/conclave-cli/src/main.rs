//! The `conclave` binary: `serve`, `project`, `application`, `token`, `client`, `audit`, `archive`,
//! `broadcast` and `bench`.
//!
//! Owns: argument parsing, logging set-up and exit codes. Must not touch: business logic,
//! which lives in the server, store, archive and core crates that these commands call.

mod application;
mod archive;
mod audit;
mod bench;
mod broadcast;
mod client;
mod duration;
mod project;
mod serve;
mod token;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "conclave", version, about = "Self-hosted, OpenTok-compatible video platform")]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "CONCLAVE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// Parsed once at start and matched once: boxing `serve`'s many flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (REST API).
    Serve(serve::ServeArgs),
    /// Create, list and rotate projects (API key + secret).
    #[command(subcommand)]
    Project(project::ProjectCommand),
    /// Create, list and rotate the keys of Vonage Video applications (application ID + RSA
    /// key pair, for the Vonage server SDKs).
    #[command(subcommand)]
    Application(application::ApplicationCommand),
    /// Mint a client token for a session, or verify one (`token verify`).
    Token(token::TokenArgs),
    /// Join a session as a scriptable participant: events out as JSON lines, stdin lines in.
    Client(client::ClientArgs),
    /// The append-only audit log of administrative actions.
    Audit(audit::AuditArgs),
    /// Archives: list by status, download from the fallback store, decrypt.
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// Live broadcasts of a running server: list, stop.
    #[command(subcommand)]
    Broadcast(broadcast::BroadcastCommand),
    /// Benchmarks that report numbers (never pass/fail).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// The data-directory and database flags shared by every command that touches state.
#[derive(clap::Args, Clone)]
pub struct DataDirArg {
    /// Directory for the embedded database, master key and TLS material.
    #[arg(long, default_value = "./conclave-data", env = "CONCLAVE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the embedded SQLite database (cluster mode: every node points at
    /// the same database), e.g. `postgres://conclave:PASSWORD@db.internal:5432/conclave?sslmode=require`.
    /// The master key still comes from the data directory or CONCLAVE_MASTER_KEY, and every
    /// node must use the same one.
    #[arg(long, env = "CONCLAVE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DataDirArg {
    /// Opens the store these flags point at: PostgreSQL with `--database-url`, else the
    /// embedded SQLite database in the data directory.
    pub async fn open_store(&self) -> anyhow::Result<std::sync::Arc<dyn conclave_store::Store>> {
        self.open_store_with(master_key(&self.data_dir)?).await
    }

    /// [`DataDirArg::open_store`] with the master key already loaded (by a caller that also
    /// derives other keys from it).
    pub async fn open_store_with(
        &self,
        key: conclave_store::MasterKey,
    ) -> anyhow::Result<std::sync::Arc<dyn conclave_store::Store>> {
        let Some(url) = self.database_url.as_deref() else {
            return Ok(std::sync::Arc::new(conclave_store::SqliteStore::open(&self.data_dir, key).await?));
        };
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--database-url must be a postgres:// or postgresql:// URL (leave it out for the embedded SQLite database)"
        );
        // The URL may carry a password: it is never part of the message.
        let store = conclave_store::PgStore::open(url, key)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL database given by --database-url: {e}"))?;
        Ok(std::sync::Arc::new(store))
    }
}

/// `CONCLAVE_MASTER_KEY` when set, else `DATA_DIR/master.key` (the directory is created 0700,
/// the key 0600, on first use).
pub fn master_key(data_dir: &Path) -> anyhow::Result<conclave_store::MasterKey> {
    use std::os::unix::fs::DirBuilderExt;
    if !data_dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir)?;
    }
    let env_key = std::env::var(conclave_store::sealing::MASTER_KEY_ENV).ok();
    Ok(conclave_store::MasterKey::load_or_create(data_dir, env_key.as_deref())?)
}

/// Opens the embedded SQLite store in `data_dir`, creating the directory (0700) and master key
/// on first use. Commands with [`DataDirArg`] call [`DataDirArg::open_store`] instead.
pub async fn open_store(data_dir: &Path) -> anyhow::Result<conclave_store::SqliteStore> {
    let key = master_key(data_dir)?;
    Ok(conclave_store::SqliteStore::open(data_dir, key).await?)
}

/// Raises the soft open-file limit to the hard limit: every participant holds a socket.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONCLAVE_LOG")
        .unwrap_or_else(|_| "info,str0m=info,sqlx=warn".into());
    // Colour codes only on a terminal: a log file or pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Recordings, the database, keys and TLS material: nothing this process writes is for
    // other users.
    // SAFETY: umask only sets this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Project(cmd) => project::run(cmd).await,
        Command::Application(cmd) => application::run(cmd).await,
        Command::Token(args) => token::run(args).await,
        Command::Client(args) => client::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Archive(cmd) => archive::run(cmd).await,
        Command::Broadcast(cmd) => broadcast::run(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
