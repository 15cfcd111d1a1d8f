//! The audit trail of administrative actions: an append-only table (the store refuses
//! updates and deletes) plus one JSON-able log line per action on the `audit` target.
//!
//! Owns: the action names and how an entry is recorded. Must not touch: the actions
//! themselves. Never records a secret or a token.

use crate::clock;
use conclave_store::{AuditEntry, Store};

/// Who did it and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub source: String,
}

impl Actor {
    pub fn rest(api_key: &str, ip: &str) -> Actor {
        Actor { who: format!("key:{api_key}"), source: ip.to_owned() }
    }
    /// A Vonage application's REST credential.
    pub fn application(application_id: &str, ip: &str) -> Actor {
        Actor { who: format!("app:{application_id}"), source: ip.to_owned() }
    }
    pub fn moderator(connection_id: &str) -> Actor {
        Actor { who: format!("moderator:{connection_id}"), source: "signaling".into() }
    }
    pub fn cli() -> Actor {
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        Actor { who: format!("cli:{user}"), source: "local".into() }
    }
}

/// Records one action. A failure to persist is logged loudly but does not undo the action.
pub async fn record(
    store: &dyn Store,
    actor: &Actor,
    api_key: Option<&str>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let entry = AuditEntry {
        seq: 0,
        at_ms: clock::unix_ms(),
        actor: actor.who.clone(),
        source: actor.source.clone(),
        api_key: api_key.map(str::to_owned),
        action: action.to_owned(),
        target: target.to_owned(),
        detail: detail.to_string(),
    };
    tracing::info!(target: "audit", actor = %entry.actor, source = %entry.source, api_key = ?entry.api_key, action, target, detail = %entry.detail, "audit");
    if let Err(e) = store.append_audit(&entry).await {
        tracing::error!(error = %e, action, "writing the audit log failed");
    }
}
