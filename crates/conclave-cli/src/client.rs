//! `conclave client`: a scriptable participant (a bot). It prints every server message as one
//! JSON line on stdout and sends each stdin line as a raw protocol message, so tests and tools
//! in any language can drive a real participant. In routed sessions it also carries real
//! media through the SFU: `--publish` sends synthetic Opus and VP8, `--subscribe-all` receives.

use conclave_client::media::{BotConfig, MediaBot};
use conclave_client::signal::{ClientMessage, ServerMessage};
use conclave_client::{Client, PublishOptions};
use conclave_core::wire::MediaMode;
use std::process::ExitCode;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(clap::Args)]
pub struct ClientArgs {
    /// Signaling URL, e.g. ws://127.0.0.1:4000/v1/signal.
    #[arg(long)]
    url: String,
    #[arg(long)]
    session_id: String,
    /// The client token (prefer the CONCLAVE_TOKEN environment variable: flags show up in
    /// process lists).
    #[arg(long, env = "CONCLAVE_TOKEN", hide_env_values = true)]
    token: String,
    /// Publish a stream with this name once connected.
    #[arg(long)]
    publish: Option<String>,
    /// Subscribe to every stream, present and future.
    #[arg(long)]
    subscribe_all: bool,
    /// Publish real encoded media (a VP8 test pattern and an Opus tone, encoded with ffmpeg
    /// at start) instead of synthetic payloads, so that archives of it can be decoded.
    #[arg(long, requires = "publish")]
    real_media: bool,
}

fn emit(msg: &ServerMessage) {
    println!("{}", serde_json::to_string(msg).expect("serializes"));
}

pub async fn run(a: ClientArgs) -> anyhow::Result<ExitCode> {
    let mut client = match Client::connect(&a.url, &a.session_id, &a.token).await {
        Ok(c) => c,
        Err(conclave_client::ClientError::Refused { code, message }) => {
            println!("{}", serde_json::json!({"type": "error", "code": code, "message": message}));
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    emit(&client.welcome);
    let routed = matches!(client.welcome, ServerMessage::Connected { media_mode: MediaMode::Routed, .. });
    let quiet = BotConfig { keep_frames: false, ..BotConfig::default() };
    let clip = if a.real_media {
        let dir = tempfile::tempdir()?;
        let clip = conclave_client::clip::EncodedClip::generate(dir.path(), 4, 15).map_err(anyhow::Error::msg)?;
        Some(std::sync::Arc::new(clip))
    } else {
        None
    };
    // Media peers, negotiated inside the event loop below so that no event is skipped while
    // an answer is awaited. Held for their lifetime: dropping a bot stops its media.
    let mut sender: Option<MediaBot> = None;
    let mut receiver: Option<MediaBot> = None;
    if let Some(name) = a.publish {
        let stream = client.publish(PublishOptions { name: Some(name), ..Default::default() }).await?;
        let id = stream.stream_id.clone();
        emit(&ServerMessage::Published { id: None, stream });
        if routed {
            let bot = MediaBot::start(BotConfig { clip: clip.clone(), ..quiet.clone() }).await?;
            client.send(ClientMessage::MediaOffer { stream_id: Some(id), sdp: bot.offer(true, false)? })?;
            sender = Some(bot);
        }
    }
    if a.subscribe_all {
        if routed {
            let bot = MediaBot::start(quiet).await?;
            client.send(ClientMessage::MediaOffer { stream_id: None, sdp: bot.offer(false, false)? })?;
            receiver = Some(bot);
        }
        for s in client.initial_streams() {
            client.subscribe(&s.stream_id).await?;
        }
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            event = client.next_event() => {
                let Some(event) = event else { return Ok(ExitCode::SUCCESS) };
                // The SFU's renegotiations of the receiving connection are answered here.
                let event = match &receiver {
                    Some(bot) => match bot.on_server_message(&client, event)? {
                        Some(e) => e,
                        None => continue,
                    },
                    None => event,
                };
                match &event {
                    ServerMessage::MediaAnswer { stream_id: Some(_), sdp } => {
                        if let Some(bot) = &sender {
                            bot.accept_answer(sdp)?;
                            bot.start_sending();
                        }
                    }
                    ServerMessage::MediaAnswer { stream_id: None, sdp } => {
                        if let Some(bot) = &receiver {
                            bot.accept_answer(sdp)?;
                        }
                    }
                    _ => {}
                }
                emit(&event);
                match &event {
                    ServerMessage::SessionDisconnected { .. } => return Ok(ExitCode::SUCCESS),
                    ServerMessage::StreamCreated { stream } if a.subscribe_all => {
                        let _ = client.subscribe(&stream.stream_id).await;
                    }
                    _ => {}
                }
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(l)) if !l.trim().is_empty() => client.send_raw(l)?,
                Ok(Some(_)) => {}
                _ => stdin_open = false,
            },
        }
    }
}
