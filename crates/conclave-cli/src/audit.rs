//! `conclave audit`: the append-only log of administrative actions, newest first.

use crate::DataDirArg;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Only this project's entries.
    #[arg(long)]
    api_key: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let store = a.data.open_store().await?;
    for e in store.audit_entries(a.api_key.as_deref(), a.limit).await? {
        if a.json {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({"seq": e.seq, "at": e.at_ms, "actor": e.actor, "source": e.source, "api_key": e.api_key, "action": e.action, "target": e.target, "detail": detail})
            );
        } else {
            println!("{}\t{}\t{}\t{}\t{}\t{}\t{}", e.seq, e.at_ms, e.actor, e.source, e.action, e.target, e.detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}
