//! Who a media peer is. The SFU (`conclave-media`) knows its peers by opaque strings; these
//! are the only strings the server gives it, made and read here and nowhere else.
//!
//! Owns the three kinds of peer and their spelling in the SFU. Must not touch: what a peer
//! may do (the hub's rules) or the SFU itself.

use std::fmt;

/// A media peer of the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerId {
    /// A publishing connection's peer, named by the stream it publishes (`pub:{streamId}`).
    Publisher(String),
    /// Protocol v1: a connection's one receiving peer, for every stream it subscribes to
    /// (`sub:{connectionId}`).
    Receiver(String),
    /// OpenTok.js: one subscriber's own receiving peer, made from a server offer
    /// (`osub:{subscriberId}`).
    Subscriber(String),
}

impl PeerId {
    /// The peer an SFU string names, if it is one the server made.
    pub fn parse(peer: &str) -> Option<PeerId> {
        let (kind, id) = peer.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "pub" => Some(PeerId::Publisher(id)),
            "sub" => Some(PeerId::Receiver(id)),
            "osub" => Some(PeerId::Subscriber(id)),
            _ => None,
        }
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerId::Publisher(stream) => write!(f, "pub:{stream}"),
            PeerId::Receiver(connection) => write!(f, "sub:{connection}"),
            PeerId::Subscriber(subscriber) => write!(f, "osub:{subscriber}"),
        }
    }
}

impl From<PeerId> for String {
    fn from(peer: PeerId) -> String {
        peer.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::PeerId;

    #[test]
    fn every_kind_reads_back_as_itself_and_nothing_else_reads() {
        for peer in [
            PeerId::Publisher("2_MX4x-stream".into()),
            PeerId::Receiver("conn-1".into()),
            PeerId::Subscriber("sub:with:colons".into()),
        ] {
            assert_eq!(PeerId::parse(&peer.to_string()), Some(peer));
        }
        assert_eq!(PeerId::parse("stream-without-kind"), None);
        assert_eq!(PeerId::parse("other:x"), None);
    }
}
