//! `conclave application create | list | rotate-key`: Vonage Video applications (an
//! application ID and RSA key pair, for the Vonage server SDKs). Safe to run while a server
//! uses the same data directory. Project-level settings (`project set-storage`,
//! `set-archive-key`, `add-callback`, `set-max-participants`, `set-pii-policy`) take an
//! application ID as their `--api-key`.
//!
//! Owns: argument parsing and output. Must not touch: key handling (server's `application`
//! module). Prints a generated private key exactly once and never stores it.

use crate::DataDirArg;
use clap::Subcommand;
use conclave_server::application;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum ApplicationCommand {
    /// Create an application: Conclave generates an RSA-2048 pair and prints the private key
    /// once (PEM), or registers the public key given with --public-key-file.
    Create {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long, default_value = "default")]
        name: String,
        /// A PEM public key (`BEGIN PUBLIC KEY`) whose private key stays with you.
        #[arg(long)]
        public_key_file: Option<PathBuf>,
        /// Last line: `{"application_id": "…", "webhook_secret": "…"}`, plus `"private_key"`
        /// when generated here.
        #[arg(long)]
        json: bool,
    },
    /// List applications (IDs, names and key IDs; never a private key).
    List {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Register a new key pair (generated, or the public key of --public-key-file). The
    /// previous key keeps verifying for --grace (default 24h).
    RotateKey {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        application_id: String,
        #[arg(long)]
        public_key_file: Option<PathBuf>,
        #[arg(long, value_parser = crate::duration::parse, default_value = "24h")]
        grace: Duration,
        #[arg(long)]
        json: bool,
    },
}

fn read_key(path: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|p| std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display())))
        .transpose()
}

pub async fn run(cmd: ApplicationCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ApplicationCommand::Create { data, name, public_key_file, json } => {
            let key = read_key(public_key_file.as_ref())?;
            let store = data.open_store().await?;
            let app = application::create_application(&*store, &name, key.as_deref()).await?;
            if json {
                let mut out = serde_json::json!({"application_id": app.application_id, "webhook_secret": app.webhook_secret.as_str()});
                if let Some(private) = &app.private_key_pem {
                    out["private_key"] = private.as_str().into();
                }
                println!("{out}");
            } else {
                println!("Application ID: {}", app.application_id);
                println!(
                    "Webhook secret: {} (verifies the HS256 signatures of this application's webhooks; it is no credential)",
                    app.webhook_secret.as_str()
                );
                if let Some(private) = &app.private_key_pem {
                    print!("{}", private.as_str());
                    println!(
                        "This private key is shown only now and Conclave does not keep it: save it where your server code runs."
                    );
                }
            }
        }
        ApplicationCommand::List { data, json } => {
            let store = data.open_store().await?;
            let mut items = Vec::new();
            for p in store.list_projects().await? {
                if p.kind != conclave_store::ProjectKind::Application {
                    continue;
                }
                let keys = match store.project(&p.api_key).await? {
                    Some(app) => app.public_keys,
                    None => continue,
                };
                items.push((p, keys));
            }
            if json {
                let out: Vec<_> = items
                    .iter()
                    .map(|(p, keys)| {
                        let keys: Vec<_> = keys
                            .iter()
                            .map(|k| serde_json::json!({"key_id": k.key_id, "created_at": k.created_at_ms, "valid_until": k.valid_until}))
                            .collect();
                        serde_json::json!({"application_id": p.api_key, "name": p.name, "created_at": p.created_at_ms, "keys": keys})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(out));
            } else {
                for (p, keys) in items {
                    let ids: Vec<_> = keys.iter().map(|k| k.key_id.as_str()).collect();
                    println!("{}\t{}\t{}", p.api_key, p.name, ids.join(","));
                }
            }
        }
        ApplicationCommand::RotateKey { data, application_id, public_key_file, grace, json } => {
            let key = read_key(public_key_file.as_ref())?;
            let store = data.open_store().await?;
            let (private, until) = application::rotate_key(&*store, &application_id, key.as_deref(), grace).await?;
            if json {
                let mut out = serde_json::json!({"application_id": application_id, "previous_valid_until": until});
                if let Some(private) = &private {
                    out["private_key"] = private.as_str().into();
                }
                println!("{out}");
            } else {
                if let Some(private) = &private {
                    print!("{}", private.as_str());
                    println!("This private key is shown only now and Conclave does not keep it.");
                }
                println!("The previous key of {application_id} keeps working until unix time {until}.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
