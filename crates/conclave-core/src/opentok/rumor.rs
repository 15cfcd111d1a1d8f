//! Rumor: the binary framing that OpenTok.js speaks over its messaging WebSocket
//! (protocol reference §5). One WebSocket binary message carries exactly one Rumor frame:
//! a message type, a list of addresses, a list of headers and a UTF-8 body.
//!
//! Owns: the byte layout (encode and decode), the eight message types, the header names the
//! reference lists, typed constructors for every frame either side sends, and a typed view of
//! what a client sent. Must not touch: sockets, timers (PING/PONG timing is the caller's job),
//! clocks or randomness. Callers pass transaction IDs and connection IDs in.
//!
//! Decoding is strict and bounded: the frame size, address and header counts and every string
//! length are checked against [`Limits`] before anything is allocated for them, the declared
//! length must match the real one (so a truncated frame is always an error), header names must
//! be unique, and every string must be UTF-8. Hostile input yields a [`RumorError`], never a
//! panic.

use std::fmt;

/// Default largest frame accepted, in bytes. The reference (§11) asks for at least 64 KB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 * 1024;
/// Default largest number of addresses in one frame (the client sends at most one).
pub const DEFAULT_MAX_ADDRESSES: usize = 16;
/// Default largest number of headers in one frame (the client sends at most four).
pub const DEFAULT_MAX_HEADERS: usize = 32;
/// Default longest address, in bytes.
pub const DEFAULT_MAX_ADDRESS_BYTES: usize = 512;
/// Default longest header name, in bytes.
pub const DEFAULT_MAX_HEADER_KEY_BYTES: usize = 128;
/// Default longest header value, in bytes (the token rides in `X-TB-TOKEN-AUTH`).
pub const DEFAULT_MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// Size of the fixed part: length (4), reserved (2), type (1), address count (1), header count (1).
pub const MIN_FRAME_BYTES: usize = 9;

/// The `Content-Type` of every client MESSAGE that carries Raptor (§5.4).
pub const RAPTOR_CONTENT_TYPE: &str = "application/x-raptor+v2";

/// Header names, spelled exactly as the client writes them (§5.3, §5.4). Lookups through
/// [`Headers::get`] ignore ASCII case.
pub mod header {
    /// Matches a reply or an acknowledgement to its request.
    pub const TRANSACTION_ID: &str = "TRANSACTION-ID";
    /// The sender's connection ID (empty: "from the server").
    pub const FROM_ADDRESS: &str = "X-TB-FROM-ADDRESS";
    /// The client token, on the connect message only.
    pub const TOKEN_AUTH: &str = "X-TB-TOKEN-AUTH";
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// The HTTP-like status of a STATUS reply, as a decimal string.
    pub const STATUS: &str = "STATUS";
    /// On CONNECT: the connection ID the client picked.
    pub const UNIQUE_ID: &str = "uniqueId";
    /// On CONNECT: the `symphony_address`.
    pub const NOTIFY_DISCONNECT_ADDRESS: &str = "notifyDisconnectAddress";
    /// On DISCONNECT: empty for a goodbye, `1` during a reconnection.
    pub const RECONNECT: &str = "reconnect";
}

/// Bounds applied while decoding. Every field is an upper limit; exceeding one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_addresses: usize,
    pub max_headers: usize,
    pub max_address_bytes: usize,
    pub max_header_key_bytes: usize,
    pub max_header_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_addresses: DEFAULT_MAX_ADDRESSES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_address_bytes: DEFAULT_MAX_ADDRESS_BYTES,
            max_header_key_bytes: DEFAULT_MAX_HEADER_KEY_BYTES,
            max_header_value_bytes: DEFAULT_MAX_HEADER_VALUE_BYTES,
        }
    }
}

impl Limits {
    /// Limits that only enforce what the byte layout itself can express (and `max_frame_bytes`).
    pub fn format_only(max_frame_bytes: usize) -> Self {
        Limits {
            max_frame_bytes,
            max_addresses: u8::MAX as usize,
            max_headers: u8::MAX as usize,
            max_address_bytes: u16::MAX as usize,
            max_header_key_bytes: u16::MAX as usize,
            max_header_value_bytes: u16::MAX as usize,
        }
    }
}

/// The Rumor message types (§5.3). Codes 5, 6 and 10 and up are not used and do not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Subscribe,
    Unsubscribe,
    Message,
    Connect,
    Disconnect,
    Ping,
    Pong,
    Status,
}

impl MessageType {
    pub const ALL: [MessageType; 8] = [
        MessageType::Subscribe,
        MessageType::Unsubscribe,
        MessageType::Message,
        MessageType::Connect,
        MessageType::Disconnect,
        MessageType::Ping,
        MessageType::Pong,
        MessageType::Status,
    ];

    pub fn code(self) -> u8 {
        match self {
            MessageType::Subscribe => 0,
            MessageType::Unsubscribe => 1,
            MessageType::Message => 2,
            MessageType::Connect => 3,
            MessageType::Disconnect => 4,
            MessageType::Ping => 7,
            MessageType::Pong => 8,
            MessageType::Status => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| t.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Subscribe => "SUBSCRIBE",
            MessageType::Unsubscribe => "UNSUBSCRIBE",
            MessageType::Message => "MESSAGE",
            MessageType::Connect => "CONNECT",
            MessageType::Disconnect => "DISCONNECT",
            MessageType::Ping => "PING",
            MessageType::Pong => "PONG",
            MessageType::Status => "STATUS",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which variable-length part of a frame an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Address,
    HeaderKey,
    HeaderValue,
    Body,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "fixed header",
            Part::Address => "address",
            Part::HeaderKey => "header name",
            Part::HeaderValue => "header value",
            Part::Body => "body",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RumorError {
    #[error("Rumor frame is {len} bytes; the limit is {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("Rumor frame is truncated in its {part} at offset {offset}")]
    Truncated { part: Part, offset: usize },
    #[error("Rumor length field says {declared} but the frame carries {actual} bytes after it")]
    LengthMismatch { declared: u32, actual: usize },
    #[error("unknown Rumor message type {0}")]
    UnknownType(u8),
    #[error("Rumor frame has {count} addresses; the limit is {max}")]
    TooManyAddresses { count: usize, max: usize },
    #[error("Rumor frame has {count} headers; the limit is {max}")]
    TooManyHeaders { count: usize, max: usize },
    #[error("Rumor {part} is {len} bytes; the limit is {max}")]
    TooLong { part: Part, len: usize, max: usize },
    #[error("Rumor {part} is not valid UTF-8")]
    InvalidUtf8 { part: Part },
    #[error("Rumor header {0:?} appears more than once")]
    DuplicateHeader(String),
    #[error("Rumor {kind} frame has no {header} header")]
    MissingHeader { kind: MessageType, header: &'static str },
    #[error("a client may not send a Rumor {0} frame")]
    UnexpectedType(MessageType),
}

/// Ordered header list with unique names (compared ignoring ASCII case). Order is kept so that
/// a decoded frame encodes back to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// The value of `name`, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Sets `name`, replacing an existing value in place, or appending.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Builder form of [`Headers::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.0.iter().position(|(k, _)| k.eq_ignore_ascii_case(name))?;
        Some(self.0.remove(at).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One Rumor message, as it travels in one WebSocket binary frame (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RumorFrame {
    pub kind: MessageType,
    pub addresses: Vec<String>,
    pub headers: Headers,
    /// UTF-8 text, normally a Raptor JSON message; empty for most non-MESSAGE frames.
    pub body: String,
}

/// What a client frame means, with its headers checked (see [`RumorFrame::client_view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    /// The first frame: the connection ID the client picked.
    Connect {
        unique_id: &'a str,
        transaction_id: Option<&'a str>,
        notify_disconnect_address: Option<&'a str>,
    },
    Subscribe {
        addresses: &'a [String],
    },
    Unsubscribe {
        addresses: &'a [String],
    },
    /// A Raptor request; the reply is a STATUS with the same transaction ID.
    Message {
        transaction_id: Option<&'a str>,
        from_address: Option<&'a str>,
        token: Option<&'a str>,
        body: &'a str,
    },
    /// `reconnect == false`: a goodbye. `true`: the old socket of a reconnecting client.
    Disconnect {
        reconnect: bool,
    },
    Ping,
    /// The client's acknowledgement of a server MESSAGE that had a transaction ID.
    Ack {
        transaction_id: &'a str,
        from_address: Option<&'a str>,
    },
}

impl RumorFrame {
    pub fn new(kind: MessageType) -> Self {
        RumorFrame { kind, addresses: Vec::new(), headers: Headers::new(), body: String::new() }
    }

    /// c→s CONNECT: no addresses, headers `uniqueId`, `TRANSACTION-ID`, `notifyDisconnectAddress`.
    pub fn connect(connection_id: &str, transaction_id: &str, notify_disconnect_address: &str) -> Self {
        let headers = Headers::new()
            .with(header::UNIQUE_ID, connection_id)
            .with(header::TRANSACTION_ID, transaction_id)
            .with(header::NOTIFY_DISCONNECT_ADDRESS, notify_disconnect_address);
        RumorFrame { headers, ..RumorFrame::new(MessageType::Connect) }
    }

    /// c→s SUBSCRIBE to `addresses` (the client sends `/v2/partner/{k}/session/{s}`).
    pub fn subscribe(addresses: Vec<String>) -> Self {
        RumorFrame { addresses, ..RumorFrame::new(MessageType::Subscribe) }
    }

    pub fn unsubscribe(addresses: Vec<String>) -> Self {
        RumorFrame { addresses, ..RumorFrame::new(MessageType::Unsubscribe) }
    }

    /// c→s MESSAGE to the `symphony_address`, as OpenTok.js sends it (§5.4). `token` is set on
    /// the connect message only.
    pub fn client_message(
        symphony_address: &str,
        transaction_id: &str,
        from_connection: &str,
        token: Option<&str>,
        body: String,
    ) -> Self {
        let mut headers = Headers::new()
            .with(header::CONTENT_TYPE, RAPTOR_CONTENT_TYPE)
            .with(header::TRANSACTION_ID, transaction_id)
            .with(header::FROM_ADDRESS, from_connection);
        if let Some(token) = token {
            headers.insert(header::TOKEN_AUTH, token);
        }
        RumorFrame {
            addresses: vec![symphony_address.to_owned()],
            headers,
            body,
            ..RumorFrame::new(MessageType::Message)
        }
    }

    /// s→c MESSAGE. `from_address` is the sender's connection ID, the media server's
    /// `symphony.…` address, or `""` for the server itself. With a transaction ID the client
    /// acknowledges it and drops repeats for about 30 s, so never reuse one.
    pub fn server_message(to: &str, transaction_id: Option<&str>, from_address: &str, body: String) -> Self {
        let mut headers =
            Headers::new().with(header::CONTENT_TYPE, RAPTOR_CONTENT_TYPE).with(header::FROM_ADDRESS, from_address);
        if let Some(tx) = transaction_id {
            headers.insert(header::TRANSACTION_ID, tx);
        }
        RumorFrame { addresses: vec![to.to_owned()], headers, body, ..RumorFrame::new(MessageType::Message) }
    }

    /// s→c STATUS reply to a client MESSAGE. `body` must be empty or JSON (§11).
    pub fn status(to: &str, transaction_id: &str, status: u16, body: String) -> Self {
        let headers =
            Headers::new().with(header::TRANSACTION_ID, transaction_id).with(header::STATUS, status.to_string());
        RumorFrame { addresses: vec![to.to_owned()], headers, body, ..RumorFrame::new(MessageType::Status) }
    }

    /// c→s STATUS acknowledging a server MESSAGE: sent to that message's `X-TB-FROM-ADDRESS`.
    pub fn ack(to: &str, transaction_id: &str, from_connection: &str) -> Self {
        let headers =
            Headers::new().with(header::TRANSACTION_ID, transaction_id).with(header::FROM_ADDRESS, from_connection);
        RumorFrame { addresses: vec![to.to_owned()], headers, ..RumorFrame::new(MessageType::Status) }
    }

    /// c→s DISCONNECT; header `reconnect` is empty for a goodbye and `1` during a reconnection.
    pub fn disconnect(reconnect: bool) -> Self {
        let headers = Headers::new().with(header::RECONNECT, if reconnect { "1" } else { "" });
        RumorFrame { headers, ..RumorFrame::new(MessageType::Disconnect) }
    }

    pub fn ping() -> Self {
        RumorFrame::new(MessageType::Ping)
    }

    /// s→c PONG: empty, no addresses, no headers (9 bytes on the wire).
    pub fn pong() -> Self {
        RumorFrame::new(MessageType::Pong)
    }

    pub fn transaction_id(&self) -> Option<&str> {
        self.headers.get(header::TRANSACTION_ID)
    }

    pub fn from_address(&self) -> Option<&str> {
        self.headers.get(header::FROM_ADDRESS)
    }

    /// The raw `STATUS` header of a STATUS frame.
    pub fn status_text(&self) -> Option<&str> {
        self.headers.get(header::STATUS)
    }

    /// The `STATUS` header as a number, when it is one.
    pub fn status_code(&self) -> Option<u16> {
        self.status_text()?.parse().ok()
    }

    /// The client's rule: a status is a success when it starts with `2` (§5.4).
    pub fn is_success(&self) -> bool {
        self.status_text().is_some_and(|s| s.starts_with('2'))
    }

    /// Interprets a frame received from a client. Server-only types (PONG) are refused, and
    /// each type's required headers must be present and, for IDs, non-empty.
    pub fn client_view(&self) -> Result<ClientFrame<'_>, RumorError> {
        let need = |name: &'static str| match self.headers.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(RumorError::MissingHeader { kind: self.kind, header: name }),
        };
        Ok(match self.kind {
            MessageType::Connect => ClientFrame::Connect {
                unique_id: need(header::UNIQUE_ID)?,
                transaction_id: self.transaction_id(),
                notify_disconnect_address: self.headers.get(header::NOTIFY_DISCONNECT_ADDRESS),
            },
            MessageType::Subscribe => ClientFrame::Subscribe { addresses: &self.addresses },
            MessageType::Unsubscribe => ClientFrame::Unsubscribe { addresses: &self.addresses },
            MessageType::Message => ClientFrame::Message {
                transaction_id: self.transaction_id(),
                from_address: self.from_address(),
                token: self.headers.get(header::TOKEN_AUTH),
                body: &self.body,
            },
            MessageType::Disconnect => {
                let flag = self.headers.get(header::RECONNECT).unwrap_or("");
                ClientFrame::Disconnect { reconnect: flag == "1" || flag.eq_ignore_ascii_case("true") }
            }
            MessageType::Ping => ClientFrame::Ping,
            MessageType::Status => {
                ClientFrame::Ack { transaction_id: need(header::TRANSACTION_ID)?, from_address: self.from_address() }
            }
            MessageType::Pong => return Err(RumorError::UnexpectedType(self.kind)),
        })
    }

    /// Number of bytes [`RumorFrame::encode`] produces (saturating on absurd sizes).
    pub fn encoded_len(&self) -> usize {
        let strings = self.addresses.iter().map(|a| 2usize.saturating_add(a.len())).fold(0usize, usize::saturating_add);
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| 4usize.saturating_add(k.len()).saturating_add(v.len()))
            .fold(0, usize::saturating_add);
        MIN_FRAME_BYTES.saturating_add(strings).saturating_add(headers).saturating_add(self.body.len())
    }

    /// Encodes the frame. Fails only when the layout cannot express it: more than 255 addresses
    /// or headers, a string longer than 65 535 bytes, a duplicate header, or a frame above 4 GiB.
    pub fn encode(&self) -> Result<Vec<u8>, RumorError> {
        self.encode_checked(&Limits::format_only(usize::MAX))
    }

    /// Encodes the frame and also holds it to `limits`, so it is known to decode with them.
    pub fn encode_checked(&self, limits: &Limits) -> Result<Vec<u8>, RumorError> {
        let addresses_max = limits.max_addresses.min(u8::MAX as usize);
        if self.addresses.len() > addresses_max {
            return Err(RumorError::TooManyAddresses { count: self.addresses.len(), max: addresses_max });
        }
        let headers_max = limits.max_headers.min(u8::MAX as usize);
        if self.headers.len() > headers_max {
            return Err(RumorError::TooManyHeaders { count: self.headers.len(), max: headers_max });
        }
        for (i, (k, _)) in self.headers.iter().enumerate() {
            if self.headers.iter().take(i).any(|(prev, _)| prev.eq_ignore_ascii_case(k)) {
                return Err(RumorError::DuplicateHeader(clip(k)));
            }
        }
        let len = self.encoded_len();
        let max = limits.max_frame_bytes.min(u32::MAX as usize + 4);
        if len > max {
            return Err(RumorError::FrameTooLarge { len, max });
        }
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&((len - 4) as u32).to_be_bytes());
        out.extend_from_slice(&[0, 0, self.kind.code(), self.addresses.len() as u8]);
        for address in &self.addresses {
            put_str(&mut out, address, Part::Address, limits.max_address_bytes)?;
        }
        out.push(self.headers.len() as u8);
        for (k, v) in self.headers.iter() {
            put_str(&mut out, k, Part::HeaderKey, limits.max_header_key_bytes)?;
            put_str(&mut out, v, Part::HeaderValue, limits.max_header_value_bytes)?;
        }
        out.extend_from_slice(self.body.as_bytes());
        Ok(out)
    }

    /// Decodes one frame. The 2 reserved bytes are ignored; everything else is checked.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<RumorFrame, RumorError> {
        if bytes.len() > limits.max_frame_bytes {
            return Err(RumorError::FrameTooLarge { len: bytes.len(), max: limits.max_frame_bytes });
        }
        let mut r = Reader { bytes, at: 0 };
        let declared = u32::from_be_bytes(r.array::<4>(Part::Header)?);
        let actual = bytes.len() - 4;
        if declared as usize != actual {
            return Err(RumorError::LengthMismatch { declared, actual });
        }
        let [_, _, code, address_count] = r.array::<4>(Part::Header)?;
        let kind = MessageType::from_code(code).ok_or(RumorError::UnknownType(code))?;
        let address_count = address_count as usize;
        if address_count > limits.max_addresses {
            return Err(RumorError::TooManyAddresses { count: address_count, max: limits.max_addresses });
        }
        let mut addresses = Vec::with_capacity(address_count);
        for _ in 0..address_count {
            addresses.push(r.string(Part::Address, limits.max_address_bytes)?);
        }
        let [header_count] = r.array::<1>(Part::Header)?;
        let header_count = header_count as usize;
        if header_count > limits.max_headers {
            return Err(RumorError::TooManyHeaders { count: header_count, max: limits.max_headers });
        }
        let mut headers = Headers(Vec::with_capacity(header_count));
        for _ in 0..header_count {
            let key = r.string(Part::HeaderKey, limits.max_header_key_bytes)?;
            let value = r.string(Part::HeaderValue, limits.max_header_value_bytes)?;
            if headers.get(&key).is_some() {
                return Err(RumorError::DuplicateHeader(clip(&key)));
            }
            headers.0.push((key, value));
        }
        let body = std::str::from_utf8(&bytes[r.at..]).map_err(|_| RumorError::InvalidUtf8 { part: Part::Body })?;
        Ok(RumorFrame { kind, addresses, headers, body: body.to_owned() })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str, part: Part, max: usize) -> Result<(), RumorError> {
    let max = max.min(u16::MAX as usize);
    if s.len() > max {
        return Err(RumorError::TooLong { part, len: s.len(), max });
    }
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// At most 64 bytes of attacker-controlled text go into an error.
fn clip(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, part: Part) -> Result<&[u8], RumorError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(RumorError::Truncated { part, offset: self.at })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, part: Part) -> Result<[u8; N], RumorError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, part)?);
        Ok(out)
    }

    fn string(&mut self, part: Part, max: usize) -> Result<String, RumorError> {
        let len = u16::from_be_bytes(self.array::<2>(part)?) as usize;
        if len > max {
            return Err(RumorError::TooLong { part, len, max });
        }
        let raw = self.take(len, part)?;
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| RumorError::InvalidUtf8 { part })
    }
}
