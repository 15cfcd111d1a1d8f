//! Alerts for archives at risk: an upload that failed is logged at error level, counted, and
//! (when SMTP is configured) mailed to the operator. The archive callback carries the reason
//! too (the caller sets it on the record).
//!
//! Owns: the alert text and the SMTP client. Must not touch: archive status or files.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none` (loopback relays only), `starttls` or `tls`.
    pub security: String,
    pub username: Option<String>,
    pub password: Option<zeroize::Zeroizing<String>>,
    pub from: String,
    pub to: Vec<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Logs, and mails when configured. Never fails the caller.
pub async fn upload_failed(
    smtp: Option<&SmtpConfig>,
    api_key: &str,
    archive_id: &str,
    session_id: &str,
    reason: &str,
    kept: bool,
) {
    tracing::error!(archive = %archive_id, project = %api_key, %reason, kept_in_fallback = kept, "ALERT: archive upload failed");
    let Some(cfg) = smtp else { return };
    let subject = format!("[conclave] archive {archive_id} was not uploaded");
    let body = format!(
        "The archive {archive_id} (project {api_key}, session {session_id}) could not be uploaded to the project's storage target.\n\nReason: {reason}\n\n{}\n",
        if kept {
            "The file is kept in Conclave's fallback store (status available) until its retention ends; download it with `conclave archive download` or the signed URL from the archive API."
        } else {
            "The project's fallback is `none`: the archive is marked failed and its file is kept for an operator (`conclave archive list --status failed`)."
        }
    );
    if let Err(e) = send(cfg, &subject, &body).await {
        tracing::error!(error = %e, "sending the alert email failed");
    }
}

async fn send(cfg: &SmtpConfig, subject: &str, body: &str) -> Result<(), String> {
    let from: Mailbox = cfg.from.parse().map_err(|e| format!("bad from address: {e}"))?;
    let mut msg = Message::builder().from(from).subject(subject);
    for to in &cfg.to {
        msg = msg.to(to.parse().map_err(|e| format!("bad to address {to}: {e}"))?);
    }
    let msg = msg.body(body.to_owned()).map_err(|e| e.to_string())?;
    let mut transport = match cfg.security.as_str() {
        "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host).map_err(|e| e.to_string())?,
        "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host).map_err(|e| e.to_string())?,
        _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
    }
    .port(cfg.port);
    if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
        transport = transport.credentials(Credentials::new(u.clone(), p.to_string()));
    }
    transport.build().send(msg).await.map(|_| ()).map_err(|e| e.to_string())
}
