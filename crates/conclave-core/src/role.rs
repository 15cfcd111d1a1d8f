//! Participant roles carried in client tokens, and what each role may do.
//!
//! Owns: the four role strings and the permission matrix. Must not touch: enforcement
//! sites (signaling and REST consult these predicates).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A participant role, exactly as the OpenTok SDKs spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Subscriber,
    Publisher,
    #[serde(rename = "publisheronly")]
    PublisherOnly,
    Moderator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Subscriber, Role::Publisher, Role::PublisherOnly, Role::Moderator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Subscriber => "subscriber",
            Role::Publisher => "publisher",
            Role::PublisherOnly => "publisheronly",
            Role::Moderator => "moderator",
        }
    }

    pub fn can_publish(self) -> bool {
        !matches!(self, Role::Subscriber)
    }

    pub fn can_subscribe(self) -> bool {
        !matches!(self, Role::PublisherOnly)
    }

    /// Subscribers and publish-only participants may not send signals (compat doc 3.4).
    pub fn can_signal(self) -> bool {
        matches!(self, Role::Publisher | Role::Moderator)
    }

    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Moderator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; expected subscriber, publisher, publisheronly or moderator")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_the_opentok_matrix() {
        assert!(!Role::Subscriber.can_publish() && Role::Subscriber.can_subscribe());
        assert!(!Role::Subscriber.can_signal());
        assert!(Role::PublisherOnly.can_publish() && !Role::PublisherOnly.can_subscribe());
        assert!(!Role::PublisherOnly.can_signal());
        assert!(Role::Publisher.can_signal() && !Role::Publisher.can_moderate());
        assert!(Role::Moderator.can_moderate() && Role::Moderator.can_publish());
    }

    #[test]
    fn parses_exact_strings_only() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("Moderator".parse::<Role>().is_err());
        assert!("admin".parse::<Role>().is_err());
    }
}
