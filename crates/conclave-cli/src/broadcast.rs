//! `conclave broadcast`: the live broadcasts of a running server (`list`) and stopping one
//! (`stop`), for operators. Broadcasts live in the server's memory, so these go through its
//! REST API with a credential minted from the project's secret in the data directory (the
//! operator's machine holds it; it never appears on the command line).
//!
//! Owns: these operator commands. Must not touch: broadcasts themselves (only the server).

use crate::DataDirArg;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BroadcastCommand {
    /// The project's broadcasts, newest first: ID, status, session, HLS URL, RTMP outputs.
    List {
        #[command(flatten)]
        target: Target,
        /// Only this session's.
        #[arg(long)]
        session_id: Option<String>,
        /// One JSON object per line (the Broadcast object).
        #[arg(long)]
        json: bool,
    },
    /// Stop a broadcast (its playlist ends; RTMP outputs close).
    Stop {
        #[command(flatten)]
        target: Target,
        id: String,
    },
}

#[derive(clap::Args)]
pub struct Target {
    #[command(flatten)]
    data: DataDirArg,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "CONCLAVE_URL")]
    url: String,
    /// The project (default: the data directory's only project).
    #[arg(long)]
    api_key: Option<String>,
}

impl Target {
    /// The base URL, the API key and a fresh REST credential.
    async fn credential(&self) -> anyhow::Result<(String, String, String)> {
        let store = self.data.open_store().await?;
        let key = match &self.api_key {
            Some(k) => k.clone(),
            None => {
                let all = store.list_projects().await?;
                anyhow::ensure!(all.len() == 1, "give --api-key: the data directory has {} projects", all.len());
                all[0].api_key.clone()
            }
        };
        let project = store.project(&key).await?.ok_or_else(|| anyhow::anyhow!("no project {key}"))?;
        let now = conclave_server::clock::unix_secs();
        let jwt = conclave_core::rest_auth::mint(&project.api_key, project.secret.as_bytes(), now, 300);
        Ok((self.url.trim_end_matches('/').to_owned(), key, jwt))
    }
}

async fn call(method: reqwest::Method, url: String, jwt: &str) -> anyhow::Result<serde_json::Value> {
    let r = reqwest::Client::new().request(method, &url).header("X-OPENTOK-AUTH", jwt).send().await?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "the server answered {status}: {}",
        body["message"].as_str().unwrap_or("no message")
    );
    Ok(body)
}

pub async fn run(cmd: BroadcastCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BroadcastCommand::List { target, session_id, json } => {
            let (base, key, jwt) = target.credential().await?;
            let mut url = format!("{base}/v2/project/{key}/broadcast?count=1000");
            if let Some(s) = session_id {
                url.push_str(&format!("&sessionId={s}"));
            }
            let v = call(reqwest::Method::GET, url, &jwt).await?;
            for b in v["items"].as_array().cloned().unwrap_or_default() {
                if json {
                    println!("{b}");
                    continue;
                }
                let rtmp: Vec<String> = b["broadcastUrls"]["rtmp"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|o| format!("{}={}", o["id"].as_str().unwrap_or("?"), o["status"].as_str().unwrap_or("?")))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    b["id"].as_str().unwrap_or_default(),
                    b["status"].as_str().unwrap_or_default(),
                    b["sessionId"].as_str().unwrap_or_default(),
                    b["broadcastUrls"]["hls"].as_str().unwrap_or("-"),
                    if rtmp.is_empty() { "-".to_owned() } else { rtmp.join(",") },
                );
            }
        }
        BroadcastCommand::Stop { target, id } => {
            anyhow::ensure!(
                id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric()),
                "{id:?} is not a broadcast ID"
            );
            let (base, key, jwt) = target.credential().await?;
            let v = call(reqwest::Method::POST, format!("{base}/v2/project/{key}/broadcast/{id}/stop"), &jwt).await?;
            println!("{} {}", v["id"].as_str().unwrap_or_default(), v["status"].as_str().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}
