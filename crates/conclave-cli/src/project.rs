//! `conclave project create | list | rotate-secret` and the project-level settings, which
//! take a Vonage application's ID as `--api-key` too. Safe to run while a server uses the
//! same data directory (SQLite WAL with a busy timeout).

use crate::DataDirArg;
use clap::Subcommand;
use conclave_server::provision;
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

/// The save-time check from the CLI is the operator's own action on the host, so it may reach
/// a private endpoint; the server's uploads still obey `serve`'s outbound policy (a private
/// endpoint needs `--allow-private-callbacks` there).
const OPERATOR_CHECK: conclave_server::webhook::CallbackPolicy =
    conclave_server::webhook::CallbackPolicy { allow_private: true, allow_http: true };

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its API key and secret (the secret is shown only here).
    Create {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long, default_value = "default")]
        name: String,
        /// Print `{"api_key": "...", "api_secret": "..."}` on one line.
        #[arg(long)]
        json: bool,
        /// Import an existing API key (with --import-secret-env) instead of generating one.
        #[arg(long, requires = "import_secret_env")]
        import_api_key: Option<String>,
        /// Name of an environment variable holding the secret to import (never a flag value,
        /// which would land in shell history and process lists).
        #[arg(long, requires = "import_api_key")]
        import_secret_env: Option<String>,
    },
    /// List projects (never their secrets).
    List {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        json: bool,
    },
    /// Set the participant limit for sessions created without maxParticipants.
    SetMaxParticipants {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        /// 1 to 10000, or 0 for no limit.
        #[arg(long)]
        max: u32,
    },
    /// What to do when a token's connection data looks like personal data (email, phone,
    /// card number): off, warn (default: log it) or reject (refuse the join).
    SetPiiPolicy {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        #[arg(long)]
        policy: conclave_core::pii::PiiPolicy,
    },
    /// Register a session-monitoring webhook (group/event: connection/created,
    /// connection/destroyed, stream/created, stream/destroyed).
    AddCallback {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        event: String,
        #[arg(long)]
        url: String,
        #[command(flatten)]
        policy: crate::serve::CallbackPolicyArgs,
    },
    /// List a project's webhooks.
    Callbacks {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
    },
    /// Set the S3-compatible bucket archives are uploaded to. Checked first with a real
    /// PutObject of a small marker (the only permission Conclave needs).
    SetStorage {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        #[arg(long)]
        bucket: String,
        /// S3-compatible base URL (default: AWS).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long)]
        access_key: String,
        /// Environment variable holding the secret access key (never a flag value).
        #[arg(long)]
        secret_key_env: String,
        /// Path-style requests (default: on when --endpoint is given).
        #[arg(long)]
        path_style: Option<bool>,
        /// Ask for SSE-S3 server-side encryption.
        #[arg(long)]
        sse_s3: bool,
        #[arg(long)]
        prefix: Option<String>,
        /// `conclave` (default: keep a failed upload's file, available for 72 h) or `none`.
        #[arg(long, default_value = "conclave")]
        fallback: String,
        /// Remove the target instead (archives then stay in the fallback store).
        #[arg(long, conflicts_with_all = ["endpoint", "prefix", "sse_s3"])]
        remove: bool,
    },
    /// Encrypt every new archive to this public key (age `age1…`, `ssh-rsa …`, a PEM RSA
    /// public key or an X.509 certificate). Give a file path or the key itself.
    SetArchiveKey {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        #[arg(long, required_unless_present = "remove")]
        public_key: Option<String>,
        #[arg(long)]
        remove: bool,
    },
    /// Replace a project's secret. The old secret keeps working for --grace (default 24h).
    RotateSecret {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        api_key: String,
        /// How long the previous secret keeps working (provision::DEFAULT_ROTATION_GRACE).
        #[arg(long, value_parser = crate::duration::parse, default_value = "24h")]
        grace: Duration,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: ProjectCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProjectCommand::Create { data, name, json, import_api_key, import_secret_env } => {
            let store = data.open_store().await?;
            let import = match (import_api_key, import_secret_env) {
                (Some(key), Some(var)) => {
                    let secret =
                        std::env::var(&var).map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?;
                    Some((key, Zeroizing::new(secret)))
                }
                _ => None,
            };
            let p = provision::create_project(&*store, &name, import).await?;
            if json {
                println!("{}", serde_json::json!({"api_key": p.api_key, "api_secret": p.api_secret.as_str()}));
            } else {
                println!(
                    "API key:    {}\nAPI secret: {}\nKeep the secret on your server; it never belongs in a client.",
                    p.api_key,
                    p.api_secret.as_str()
                );
            }
        }
        ProjectCommand::List { data, json } => {
            let store = data.open_store().await?;
            let projects = store.list_projects().await?;
            if json {
                let items: Vec<_> = projects
                    .iter()
                    .map(|p| serde_json::json!({"api_key": p.api_key, "kind": p.kind.as_str(), "name": p.name, "created_at": p.created_at_ms, "rotation_grace_until": p.rotation_grace_until}))
                    .collect();
                println!("{}", serde_json::Value::Array(items));
            } else {
                for p in projects {
                    let kind = if p.kind == conclave_store::ProjectKind::Application { "\t(application)" } else { "" };
                    println!("{}\t{}{kind}", p.api_key, p.name);
                }
            }
        }
        ProjectCommand::SetMaxParticipants { data, api_key, max } => {
            anyhow::ensure!(
                max <= conclave_core::wire::MAX_PARTICIPANTS_LIMIT,
                "--max must be at most {}",
                conclave_core::wire::MAX_PARTICIPANTS_LIMIT
            );
            let store = data.open_store().await?;
            store.set_default_max_participants(&api_key, (max > 0).then_some(max)).await?;
            let audit = conclave_server::audit::Actor::cli();
            conclave_server::audit::record(
                &*store,
                &audit,
                Some(&api_key),
                "project.set_max_participants",
                &api_key,
                serde_json::json!({"max": max}),
            )
            .await;
            println!(
                "default maxParticipants for {api_key}: {}",
                if max > 0 { max.to_string() } else { "none".into() }
            );
        }
        ProjectCommand::SetPiiPolicy { data, api_key, policy } => {
            let store = data.open_store().await?;
            store.set_pii_policy(&api_key, policy).await?;
            let audit = conclave_server::audit::Actor::cli();
            conclave_server::audit::record(
                &*store,
                &audit,
                Some(&api_key),
                "project.set_pii_policy",
                &api_key,
                serde_json::json!({"policy": policy.as_str()}),
            )
            .await;
            println!("personal-data policy for {api_key}: {}", policy.as_str());
        }
        ProjectCommand::AddCallback { data, api_key, group, event, url, policy } => {
            let store = data.open_store().await?;
            let record = conclave_server::api::new_callback(&api_key, &group, &event, &url, policy.policy())
                .map_err(anyhow::Error::msg)?;
            store.insert_callback(&record).await?;
            let audit = conclave_server::audit::Actor::cli();
            let detail = serde_json::json!({"group": record.group, "event": record.event, "url": record.url});
            conclave_server::audit::record(&*store, &audit, Some(&api_key), "callback.register", &record.id, detail)
                .await;
            println!(
                "{}",
                serde_json::json!({"id": record.id, "group": record.group, "event": record.event, "url": record.url})
            );
        }
        ProjectCommand::Callbacks { data, api_key } => {
            let store = data.open_store().await?;
            for c in store.callbacks(&api_key).await? {
                println!("{}\t{}/{}\t{}", c.id, c.group, c.event, c.url);
            }
        }
        ProjectCommand::SetStorage {
            data,
            api_key,
            bucket,
            endpoint,
            region,
            access_key,
            secret_key_env,
            path_style,
            sse_s3,
            prefix,
            fallback,
            remove,
        } => {
            let store = data.open_store().await?;
            anyhow::ensure!(store.project(&api_key).await?.is_some(), "no project {api_key}");
            let audit = conclave_server::audit::Actor::cli();
            if remove {
                store.set_archive_storage(&api_key, None, conclave_server::clock::unix_ms()).await?;
                conclave_server::audit::record(
                    &*store,
                    &audit,
                    Some(&api_key),
                    "archive.storage_removed",
                    &api_key,
                    serde_json::json!({}),
                )
                .await;
                println!("upload target removed for {api_key}");
                return Ok(ExitCode::SUCCESS);
            }
            let secret_key = std::env::var(&secret_key_env)
                .map_err(|_| anyhow::anyhow!("environment variable {secret_key_env} is not set"))?;
            let body = serde_json::json!({"type": "s3", "config": {"bucket": bucket, "endpoint": endpoint, "region": region, "accessKey": access_key, "secretKey": secret_key, "pathStyle": path_style, "sse": if sse_s3 { "s3" } else { "none" }, "prefix": prefix}, "fallback": fallback});
            let target = serde_json::from_value::<conclave_core::archive::StorageBody>(body)?
                .validate()
                .map_err(|e| anyhow::anyhow!(e.0))?;
            let marker =
                conclave_server::archive::storage::check(&target, OPERATOR_CHECK).await.map_err(anyhow::Error::msg)?;
            store
                .set_archive_storage(
                    &api_key,
                    Some(&serde_json::to_string(&target)?),
                    conclave_server::clock::unix_ms(),
                )
                .await?;
            let detail = serde_json::json!({"bucket": target.s3.bucket, "endpoint": target.s3.endpoint, "fallback": target.fallback});
            conclave_server::audit::record(&*store, &audit, Some(&api_key), "archive.storage_set", &api_key, detail)
                .await;
            println!("upload target saved for {api_key} (test object {marker} written)");
        }
        ProjectCommand::SetArchiveKey { data, api_key, public_key, remove } => {
            let store = data.open_store().await?;
            let audit = conclave_server::audit::Actor::cli();
            if remove {
                store.set_archive_recipient(&api_key, None).await?;
                conclave_server::audit::record(
                    &*store,
                    &audit,
                    Some(&api_key),
                    "archive.encryption_removed",
                    &api_key,
                    serde_json::json!({}),
                )
                .await;
                println!("archives of {api_key} are no longer encrypted");
                return Ok(ExitCode::SUCCESS);
            }
            let given = public_key.expect("clap requires it");
            let key = match std::fs::read_to_string(&given) {
                Ok(text) => text.trim().to_owned(),
                Err(_) => given.trim().to_owned(),
            };
            conclave_archive::encrypt::ArchiveRecipient::parse(&key)
                .map_err(|e| anyhow::anyhow!("not a usable public key: {e}"))?;
            store.set_archive_recipient(&api_key, Some(&key)).await?;
            conclave_server::audit::record(
                &*store,
                &audit,
                Some(&api_key),
                "archive.encryption_set",
                &api_key,
                serde_json::json!({}),
            )
            .await;
            println!("new archives of {api_key} are encrypted to this key");
        }
        ProjectCommand::RotateSecret { data, api_key, grace, json } => {
            let store = data.open_store().await?;
            if store.project(&api_key).await?.is_some_and(|p| p.kind == conclave_store::ProjectKind::Application) {
                anyhow::bail!(
                    "{api_key} is a Vonage application, which has no secret: use `conclave application rotate-key`"
                );
            }
            let (secret, until) = provision::rotate_secret(&*store, &api_key, grace).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"api_key": api_key, "api_secret": secret.as_str(), "previous_valid_until": until})
                );
            } else {
                println!(
                    "API key:    {api_key}\nAPI secret: {}\nThe previous secret keeps working until unix time {until}.",
                    secret.as_str()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
