//! Just enough STUN parsing to demultiplex: the local ICE ufrag of a binding
//! request's USERNAME attribute.
//!
//! Owns no state and verifies nothing: the peer's own `Rtc` checks the
//! MESSAGE-INTEGRITY before a route is trusted.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const HEADER_LEN: usize = 20;

/// If `bytes` is a STUN binding request with a USERNAME attribute, the part
/// before the `:`, which is the receiving agent's (our) ufrag (RFC 8445 7.2.2).
pub(crate) fn binding_request_local_ufrag(bytes: &[u8]) -> Option<&str> {
    if bytes.len() < HEADER_LEN || bytes[0] & 0xC0 != 0 || bytes[4..8] != MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([bytes[0], bytes[1]]) != BINDING_REQUEST {
        return None;
    }
    let body_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let body = bytes.get(HEADER_LEN..HEADER_LEN + body_len)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let attr = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if attr == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        let padded = (len + 3) & !3;
        rest = rest.get(4 + padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(msg_type: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize((body.len() + 3) & !3, 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&msg_type.to_be_bytes());
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_local_ufrag_after_other_attributes() {
        let m = message(0x0001, &[(0x8022, b"sw"), (ATTR_USERNAME, b"serverufrag:client")]);
        assert_eq!(binding_request_local_ufrag(&m), Some("serverufrag"));
    }

    #[test]
    fn ignores_responses_truncated_and_non_stun_input() {
        let resp = message(0x0101, &[(ATTR_USERNAME, b"a:b")]);
        assert_eq!(binding_request_local_ufrag(&resp), None);
        let m = message(0x0001, &[(ATTR_USERNAME, b"abc:def")]);
        assert_eq!(binding_request_local_ufrag(&m[..m.len() - 2]), None);
        assert_eq!(binding_request_local_ufrag(&[0x80; 40]), None);
        let no_colon = message(0x0001, &[(ATTR_USERNAME, b"abcdef")]);
        assert_eq!(binding_request_local_ufrag(&no_colon), None);
    }
}
