//! RSA public keys given as PEM, turned into the OpenSSH `ssh-rsa` line that age's RSA-OAEP
//! recipient understands. Accepts `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1) and
//! `CERTIFICATE` (X.509; only the subjectPublicKeyInfo is read — the certificate's
//! signature, validity and chain are NOT checked, the customer's account is the trust
//! anchor). A minimal DER walker, no crypto; it must not accept anything but RSA keys.

use crate::error::{ArchiveError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn bad(what: &str) -> ArchiveError {
    ArchiveError::Encrypt(format!("PEM key: {what}"))
}

/// `ssh-rsa AAAA…` for the RSA key in a PEM block.
pub(super) fn rsa_pem_to_ssh(pem: &str) -> Result<String> {
    let (label, der) = decode_pem(pem)?;
    let (n, e) = match label.as_str() {
        "PUBLIC KEY" => spki_rsa(&der)?,
        "RSA PUBLIC KEY" => pkcs1_rsa(&der)?,
        "CERTIFICATE" => spki_rsa(cert_spki(&der)?)?,
        other => return Err(bad(&format!("unsupported PEM type {other:?}"))),
    };
    let mut wire = Vec::new();
    ssh_string(&mut wire, b"ssh-rsa");
    ssh_string(&mut wire, &mpint(e));
    ssh_string(&mut wire, &mpint(n));
    Ok(format!("ssh-rsa {}", STANDARD.encode(wire)))
}

fn decode_pem(pem: &str) -> Result<(String, Vec<u8>)> {
    let mut lines = pem.lines().map(str::trim).skip_while(|l| l.is_empty());
    let label = lines
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or_else(|| bad("no BEGIN line"))?
        .to_string();
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for l in lines.by_ref() {
        if l == end {
            let der = STANDARD.decode(&body).map_err(|_| bad("bad base64"))?;
            return Ok((label, der));
        }
        if !l.contains(':') {
            body.push_str(l); // skip RFC 1421 headers such as Proc-Type
        }
    }
    Err(bad("no END line"))
}

/// One DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first().ok_or_else(|| bad("truncated"))?;
    let (&l0, mut b) = b.split_first().ok_or_else(|| bad("truncated"))?;
    let len = if l0 < 0x80 {
        l0 as usize
    } else {
        let k = (l0 & 0x7f) as usize;
        if k == 0 || k > 4 || b.len() < k {
            return Err(bad("bad length"));
        }
        let len = b[..k].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
        b = &b[k..];
        len
    };
    if b.len() < len {
        return Err(bad("truncated"));
    }
    Ok((tag, &b[..len], &b[len..]))
}

fn expect(b: &[u8], want: u8) -> Result<(&[u8], &[u8])> {
    let (tag, content, rest) = tlv(b)?;
    if tag != want {
        return Err(bad(&format!("expected tag {want:#x}, got {tag:#x}")));
    }
    Ok((content, rest))
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
fn pkcs1_rsa(der: &[u8]) -> Result<(&[u8], &[u8])> {
    let (seq, _) = expect(der, 0x30)?;
    let (n, rest) = expect(seq, 0x02)?;
    let (e, _) = expect(rest, 0x02)?;
    Ok((n, e))
}

/// SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }
fn spki_rsa(der: &[u8]) -> Result<(&[u8], &[u8])> {
    let (spki, _) = expect(der, 0x30)?;
    let (alg, rest) = expect(spki, 0x30)?;
    let (oid, _) = expect(alg, 0x06)?;
    if oid != RSA_ENCRYPTION_OID {
        return Err(bad("not an RSA key (only RSA certificates and keys are supported)"));
    }
    let (bits, _) = expect(rest, 0x03)?;
    match bits.split_first() {
        Some((0, key)) => pkcs1_rsa(key),
        _ => Err(bad("bad BIT STRING")),
    }
}

/// The subjectPublicKeyInfo TLV of an X.509 certificate.
fn cert_spki(der: &[u8]) -> Result<&[u8]> {
    let (cert, _) = expect(der, 0x30)?;
    let (mut tbs, _) = expect(cert, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2; // [0] version
    }
    // serialNumber, signature, issuer, validity, subject
    for want in [0x02, 0x30, 0x30, 0x30, 0x30] {
        tbs = expect(tbs, want)?.1;
    }
    let (tag, _, rest) = tlv(tbs)?;
    if tag != 0x30 {
        return Err(bad("no subjectPublicKeyInfo"));
    }
    Ok(&tbs[..tbs.len() - rest.len()])
}

/// SSH mpint (RFC 4251 §5) of a non-negative DER INTEGER.
fn mpint(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|&b| b != 0).unwrap_or(int.len());
    let mut v = Vec::with_capacity(int.len() + 1);
    if int.get(start).is_some_and(|&b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(&int[start..]);
    v
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}
