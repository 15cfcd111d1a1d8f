//! `conclave archive`: what waits in the fallback store (`list`), getting a file out of it or
//! from a signed URL (`download`, with progress), and decrypting an encrypted archive with
//! the customer's private key (`decrypt`).
//!
//! Owns: these operator commands. Must not touch: archive status (only the server changes it).

use crate::DataDirArg;
use conclave_core::archive::ArchiveStatus;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ArchiveCommand {
    /// Archives by status (all projects), e.g. `--status available` for the fallback store.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Repeat or comma-separate; default: every status but deleted.
        #[arg(long, value_delimiter = ',')]
        status: Vec<ArchiveStatus>,
        #[arg(long)]
        api_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Copy an archive out of the fallback store (or fetch a signed URL) into a file.
    Download {
        #[command(flatten)]
        data: DataDirArg,
        /// The archive ID (reads the data directory's fallback store).
        #[arg(required_unless_present = "url")]
        id: Option<String>,
        /// A signed download URL from the archive API instead of the local store.
        #[arg(long, conflicts_with = "id")]
        url: Option<String>,
        /// Output file (default: `<id>.<ext>` in the current directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Decrypt an encrypted archive with the private key matching the project's archive key.
    Decrypt {
        /// An age identity file (`age-keygen`) or an unencrypted RSA private key.
        #[arg(long)]
        identity: PathBuf,
        input: PathBuf,
        output: PathBuf,
    },
}

fn progress(done: u64, total: u64) {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    eprint!("\r{pct:>3}%  {done}/{total} bytes");
    let _ = std::io::stderr().flush();
}

/// Copies `reader` to a fresh `out`, reporting progress on stderr.
async fn copy_with_progress(mut next: impl AsyncChunks, total: u64, out: &std::path::Path) -> anyhow::Result<u64> {
    let mut f = std::fs::File::create_new(out).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let mut done = 0u64;
    progress(0, total);
    while let Some(chunk) = next.next_chunk().await? {
        f.write_all(&chunk)?;
        done += chunk.len() as u64;
        progress(done, total);
    }
    f.sync_all()?;
    eprintln!();
    Ok(done)
}

trait AsyncChunks {
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>>;
}

struct FileChunks(std::fs::File);
impl AsyncChunks for FileChunks {
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let mut buf = vec![0u8; 1 << 20];
        let n = self.0.read(&mut buf)?;
        buf.truncate(n);
        Ok((n > 0).then_some(buf))
    }
}

struct HttpChunks(reqwest::Response);
impl AsyncChunks for HttpChunks {
    async fn next_chunk(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.0.chunk().await?.map(|b| b.to_vec()))
    }
}

pub async fn run(cmd: ArchiveCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ArchiveCommand::List { data, status, api_key, json } => {
            let store = data.open_store().await?;
            let statuses: Vec<ArchiveStatus> = if status.is_empty() {
                ArchiveStatus::ALL.into_iter().filter(|s| *s != ArchiveStatus::Deleted).collect()
            } else {
                status
            };
            let items = store.archives_in_status(&statuses).await?;
            for r in items.iter().filter(|r| api_key.as_deref().is_none_or(|k| k == r.api_key)) {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"id": r.id, "apiKey": r.api_key, "sessionId": r.session_id, "status": r.status, "reason": r.reason, "size": r.size, "sha256": r.sha256, "createdAt": r.created_at_ms, "expiresAt": r.expires_at_ms, "encrypted": r.encrypted, "file": r.fallback_file})
                    );
                } else {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.api_key,
                        r.status.as_str(),
                        r.size,
                        r.created_at_ms,
                        r.expires_at_ms.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                        r.reason
                    );
                }
            }
        }
        ArchiveCommand::Download { data, id, url, out } => {
            if let Some(url) = url {
                let resp = reqwest::get(&url).await?;
                anyhow::ensure!(
                    resp.status().is_success(),
                    "download refused: {} {}",
                    resp.status(),
                    resp.text().await.unwrap_or_default()
                );
                let total = resp.content_length().unwrap_or(0);
                let name = url.split('?').next().and_then(|p| p.rsplit('/').nth(1)).unwrap_or("archive").to_owned();
                let out = out.unwrap_or_else(|| PathBuf::from(name));
                let n = copy_with_progress(HttpChunks(resp), total, &out).await?;
                println!("{} ({n} bytes)", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            let id = id.expect("clap requires id or url");
            anyhow::ensure!(conclave_core::archive::is_archive_id(&id), "{id:?} is not an archive ID");
            let store = data.open_store().await?;
            let r = store.archive(&id).await?.ok_or_else(|| anyhow::anyhow!("no archive {id}"))?;
            let file = r
                .fallback_file
                .clone()
                .ok_or_else(|| anyhow::anyhow!("archive {id} is {} and has no local copy", r.status.as_str()))?;
            let ext = file.split_once('.').map(|(_, e)| e).unwrap_or("");
            let fallback =
                conclave_archive::upload::FallbackStore::new(data.data_dir.join("archives").join("fallback"))?;
            let src = fallback.open(&id, ext)?;
            let total = src.metadata()?.len();
            let out = out.unwrap_or_else(|| PathBuf::from(&file));
            let n = copy_with_progress(FileChunks(src), total, &out).await?;
            let sum = conclave_archive::digest::sha256_file(&out)?;
            anyhow::ensure!(
                sum == r.sha256,
                "checksum mismatch: the file's sha256 is {sum}, the archive says {}",
                r.sha256
            );
            println!("{} ({n} bytes, sha256 {sum} verified)", out.display());
        }
        ArchiveCommand::Decrypt { identity, input, output } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&identity)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", identity.display()))?,
            );
            let n = conclave_archive::encrypt::decrypt_file(&text, &input, &output)?;
            println!("{} ({n} bytes)", output.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
