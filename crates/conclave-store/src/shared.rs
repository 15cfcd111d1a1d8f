//! What every backend must do identically: the sealing contexts (associated data) of each
//! secret, the master-key check row, integer conversions and the archive document format.
//! Owns: those definitions, so that a database written by one backend's code reads the same
//! in another's. Must not touch: SQL.

use crate::StoreError;
use crate::records::ArchiveRecord;
use crate::sealing::MasterKey;
use zeroize::Zeroizing;

/// The `meta` row that proves the master key opens this database's secrets.
pub(crate) const KEY_CHECK: &str = "master-key-check";
pub(crate) const KEY_CHECK_PLAINTEXT: &[u8] = b"conclave master key check v1";

pub(crate) fn secret_context(api_key: &str) -> String {
    format!("project-secret:{api_key}")
}

pub(crate) fn previous_secret_context(api_key: &str) -> String {
    format!("project-previous-secret:{api_key}")
}

pub(crate) fn storage_context(api_key: &str) -> String {
    format!("archive-storage:{api_key}")
}

/// Checks the stored key-check value (sealed by whichever node wrote it first).
pub(crate) fn verify_key_check(key: &MasterKey, stored: &[u8]) -> Result<(), StoreError> {
    match key.unseal(KEY_CHECK, stored) {
        Some(p) if p.as_slice() == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::WrongMasterKey),
    }
}

pub(crate) fn unseal_text(key: &MasterKey, context: &str, sealed: &[u8]) -> Result<Zeroizing<String>, StoreError> {
    let plain = key.unseal(context, sealed).ok_or(StoreError::WrongMasterKey)?;
    let text = std::str::from_utf8(&plain).map_err(|_| StoreError::Corrupt("sealed secret is not UTF-8".into()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

pub(crate) fn clamp_u32(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// `Conflict` for a unique violation, else the database error.
pub(crate) fn conflict_or(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) { StoreError::Conflict } else { e.into() }
}

pub(crate) fn decode_archive(doc: &str) -> Result<ArchiveRecord, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt(format!("archive row: {e}")))
}

pub(crate) fn encode_archive(r: &ArchiveRecord) -> String {
    serde_json::to_string(r).expect("archive records serialize")
}
