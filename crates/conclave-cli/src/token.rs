//! `conclave token` (mint a client token for a session: HS256 or T1 with the project's secret,
//! or RS256 with an application's private key from `--private-key-file`) and
//! `conclave token verify`.

use crate::DataDirArg;
use conclave_core::token::{MAX_CONNECTION_DATA_CHARS, MAX_LIFETIME_SECS, TokenParams, mint_jwt, mint_t1};
use conclave_core::{Role, SessionId};
use conclave_server::auth::{AuthFailure, verify_client_token};
use conclave_server::clock;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    verify: Option<TokenCommand>,
    #[command(flatten)]
    mint: MintArgs,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Verify a client token for a session with the server's own verifier. Prints the claims
    /// as JSON and exits 0, or prints `{"code","message"}` and exits 1.
    Verify {
        #[command(flatten)]
        data: DataDirArg,
        #[arg(long)]
        session_id: String,
        /// The token (or `-` to read it from standard input).
        #[arg(long)]
        token: String,
    },
}

#[derive(clap::Args)]
struct MintArgs {
    #[command(flatten)]
    dir: DataDirArg,
    #[arg(long)]
    session_id: Option<String>,
    #[arg(long, default_value = "publisher")]
    role: String,
    #[arg(long, value_parser = crate::duration::parse, default_value = "1h")]
    expire_in: Duration,
    /// Connection data shown to every participant: never put personal data here.
    #[arg(long)]
    data: Option<String>,
    /// Initial layout class; repeat for several.
    #[arg(long = "layout-class")]
    layout_classes: Vec<String>,
    #[arg(long, value_enum, default_value = "jwt")]
    format: Format,
    /// Project; defaults to the owner of the session according to the store.
    #[arg(long)]
    api_key: Option<String>,
    /// The session belongs to a Vonage application: sign an RS256 client token with this
    /// private key (PEM), as the Vonage SDKs' `generateClientToken` does.
    #[arg(long)]
    private_key_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Jwt,
    T1,
}

pub async fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    match args.verify {
        Some(TokenCommand::Verify { data, session_id, token }) => verify(&data, &session_id, token).await,
        None => mint(args.mint).await,
    }
}

async fn verify(data: &DataDirArg, session_id: &str, token: String) -> anyhow::Result<ExitCode> {
    let token = if token == "-" { std::io::read_to_string(std::io::stdin())?.trim().to_owned() } else { token };
    let store = data.open_store().await?;
    match verify_client_token(&*store, &token, session_id, clock::unix_secs()).await {
        Ok(join) => {
            println!("{}", serde_json::to_string(&join.claims)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(AuthFailure::Rejected(e)) => {
            println!("{}", serde_json::json!({"code": e.code(), "message": e.to_string()}));
            Ok(ExitCode::FAILURE)
        }
        Err(AuthFailure::Store(e)) => Err(e.into()),
    }
}

async fn mint(a: MintArgs) -> anyhow::Result<ExitCode> {
    let session_id = a.session_id.ok_or_else(|| anyhow::anyhow!("--session-id is required"))?;
    let id = SessionId::parse(&session_id)?;
    let role: Role = a.role.parse()?;
    if a.data.as_deref().is_some_and(|d| d.chars().count() > MAX_CONNECTION_DATA_CHARS) {
        anyhow::bail!("--data must be at most {MAX_CONNECTION_DATA_CHARS} characters");
    }
    if a.expire_in.as_secs() == 0 || a.expire_in.as_secs() > MAX_LIFETIME_SECS {
        anyhow::bail!("--expire-in must be between 1s and 30d");
    }
    if let Some(data) = a.data.as_deref() {
        let found = conclave_core::pii::scan(data);
        if !found.is_empty() {
            eprintln!(
                "warning: --data looks like personal data ({found:?}). Connection data is shown to every participant and ends up in client logs; use an opaque ID instead."
            );
        }
    }
    let store = a.dir.open_store().await?;
    let session =
        store.session(id.as_str()).await?.ok_or_else(|| anyhow::anyhow!("no session {id} in this data directory"))?;
    if a.api_key.as_deref().is_some_and(|k| k != session.api_key) {
        anyhow::bail!("session {id} does not belong to project {}", a.api_key.unwrap_or_default());
    }
    let project =
        store.project(&session.api_key).await?.ok_or_else(|| anyhow::anyhow!("the session's project is missing"))?;
    let now = clock::unix_secs();
    let mut nonce = [0u8; 4];
    getrandom::fill(&mut nonce)?;
    let params = TokenParams {
        session_id: id.as_str(),
        role,
        create_time: now,
        expire_time: now + a.expire_in.as_secs(),
        nonce: u32::from_le_bytes(nonce) % 1_000_000,
        connection_data: a.data.as_deref(),
        initial_layout_classes: &a.layout_classes,
    };
    let is_application = project.kind == conclave_store::ProjectKind::Application;
    let token = match (&a.private_key_file, is_application) {
        (Some(path), true) => {
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
            );
            let signer = conclave_server::application::Signer::from_pem(&pem)?;
            let der = signer.public_key_der();
            anyhow::ensure!(
                project.candidate_public_keys(now).any(|k| k.der == der),
                "--private-key-file is not a current key of application {}",
                project.api_key
            );
            let p = conclave_server::application::ClientTokenParams {
                session_id: id.as_str(),
                role,
                issued_at: now,
                expires_at: now + a.expire_in.as_secs(),
                connection_data: a.data.as_deref(),
                initial_layout_classes: &a.layout_classes,
            };
            signer.client_token(&project.api_key, &p)
        }
        (None, true) => anyhow::bail!(
            "session {id} belongs to application {}: give its private key with --private-key-file",
            project.api_key
        ),
        (Some(_), false) => anyhow::bail!("session {id} belongs to a project (API key and secret), not an application"),
        (None, false) => match a.format {
            Format::Jwt => mint_jwt(&project.api_key, project.secret.as_bytes(), &params),
            Format::T1 => mint_t1(&project.api_key, project.secret.as_bytes(), &params),
        },
    };
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
