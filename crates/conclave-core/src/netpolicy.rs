//! The SSRF address policy: which IP addresses the server may connect to on a customer's
//! behalf (webhook deliveries, S3-compatible storage, RTMP push targets, WebSocket targets).
//!
//! Owns: the judgement "is this address public", written as data (one table per family of
//! special-purpose blocks, each row naming its block the way the registry does) plus the
//! unwrapping of the IPv6 forms that carry an IPv4 address. Pure: no I/O, no allocation, no
//! global state.
//!
//! Must not touch: DNS or sockets. Callers resolve the name themselves, check every address
//! they might connect to with [`is_public`], and then connect to the checked address rather
//! than looking the name up again (a second lookup can answer differently: DNS rebinding). A
//! redirect is a new target and is checked again.
//!
//! Source: the IANA IPv4 Special-Purpose Address Registry
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry/>) and IPv6 Special-Purpose
//! Address Registry (<https://www.iana.org/assignments/iana-ipv6-special-registry/>) as they
//! stand in 2026, whose most recent entries are 100:0:0:1::/64 (RFC 9780), 3fff::/20
//! (RFC 9637), 5f00::/16 (RFC 9602) and 2001:1::3/128 (RFC 9665). Every block there whose
//! "Globally Reachable" is False, N/A or empty (terminated) is refused. Blocks that are not in
//! those registries but refused all the same come from the IPv4 Multicast Address Space
//! registry (224.0.0.0/4), the IPv4 registry's 240.0.0.0/4 and 255.255.255.255, and the IPv6
//! Address Space registry (ff00::/8 multicast, fec0::/10 deprecated site-local, and ::/8
//! "Reserved by IETF").
//!
//! Where this is stricter than the registries, on purpose:
//! - All of 192.0.0.0/24 and 2001::/23 are refused, including the anycast /32s and /128s and
//!   the AMT, AS112-v6, ORCHIDv2 and DET blocks that the registries mark globally reachable.
//!   No customer service lives there.
//! - The AS112 and AMT blocks outside those (192.31.196.0/24, 192.52.193.0/24,
//!   192.175.48.0/24, 2620:4f:8000::/48) are globally reachable anycast infrastructure: refused
//!   for the same reason.
//! - 6to4 (2002::/16, "N/A"): all of it is refused, whatever IPv4 address it carries. 6to4 is
//!   obsolete (RFC 7526) and its relays forward to an IPv4 host this check cannot vouch for.
//!   When the carried IPv4 address is itself non-public, that address's reason is reported.
//! - Teredo (2001::/32, "N/A"): refused. The client IPv4 address in it is obfuscated, and the
//!   tunnel ends at a host this check cannot see.
//! - The rest of ::/8 (for example the obsolete IPv4-translated ::ffff:0:a.b.c.d) is refused:
//!   it is unallocated, and it is where sloppy stacks look for embedded IPv4 addresses.
//!
//! Where this judges the carried IPv4 address instead of the block: IPv4-mapped ::ffff:0:0/96
//! (a dual-stack socket connects to the IPv4 address itself), the deprecated IPv4-compatible
//! ::/96, and the NAT64 well-known prefix 64:ff9b::/96. A NAT64 network-specific prefix
//! (RFC 6052 section 2.2) looks like any global address and cannot be recognised here; a
//! deployment behind one must make its DNS64 exclude non-public IPv4 answers.
//!
//! Not refused, although unroutable: unallocated space outside ::/8 (for example fe00::/9),
//! which nothing on the Internet answers for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use V6Rule::{AsCarried, Refuse, RefuseNamingCarried};

/// True if `ip` may be the destination of an outbound connection made on a customer's behalf;
/// false for loopback, private, link-local, documentation, multicast and every other
/// special-purpose address (see the module documentation for the exact list).
pub fn is_public(ip: IpAddr) -> bool {
    non_public_reason(ip).is_none()
}

/// Why `ip` is refused, for error messages: the registry's name for the block it is in, for
/// example `"Private-Use"` or `"Loopback Address"`. `None` if it is public.
///
/// An IPv6 address that carries a non-public IPv4 address (`::ffff:127.0.0.1`,
/// `64:ff9b::a00:1`, `2002:7f00:1::`) reports the IPv4 address's reason (`"Loopback"`,
/// `"Private-Use"`). The most specific block wins: 192.0.0.8 is `"IPv4 dummy address"`, not
/// `"IETF Protocol Assignments"`.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4_BLOCKS.iter().filter(|b| b.contains(ip)).max_by_key(|b| b.len).map(|b| b.name)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let block = V6_BLOCKS.iter().filter(|b| b.contains(ip)).max_by_key(|b| b.len)?;
    match block.rule {
        V6Rule::Refuse => Some(block.name),
        V6Rule::AsCarried { shift } => v4_reason(carried_v4(ip, shift)),
        V6Rule::RefuseNamingCarried { shift } => Some(v4_reason(carried_v4(ip, shift)).unwrap_or(block.name)),
    }
}

/// The IPv4 address in bits `shift..shift + 32` of `ip` (bit 0 is the last bit).
fn carried_v4(ip: Ipv6Addr, shift: u32) -> Ipv4Addr {
    // Truncation intended: keep the 32 bits that start at `shift`.
    Ipv4Addr::from_bits((ip.to_bits() >> shift) as u32)
}

/// The network mask of a prefix length (0 ..= 32).
fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The network mask of a prefix length (0 ..= 128).
fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// One refused IPv4 block and the registry's name for it.
struct V4Block {
    net: Ipv4Addr,
    len: u8,
    name: &'static str,
}

impl V4Block {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        (ip.to_bits() ^ self.net.to_bits()) & mask32(self.len) == 0
    }
}

/// How an address in an IPv6 block is judged.
#[derive(Clone, Copy)]
enum V6Rule {
    /// Never public.
    Refuse,
    /// Exactly as public as the IPv4 address it carries in bits `shift..shift + 32`.
    AsCarried { shift: u32 },
    /// Never public; reported under the carried IPv4 address's reason when that one is
    /// non-public (more useful in an error message), else under the block's own name.
    RefuseNamingCarried { shift: u32 },
}

/// One special-purpose IPv6 block, the registry's name for it, and how it is judged.
struct V6Block {
    net: Ipv6Addr,
    len: u8,
    name: &'static str,
    rule: V6Rule,
}

impl V6Block {
    fn contains(&self, ip: Ipv6Addr) -> bool {
        (ip.to_bits() ^ self.net.to_bits()) & mask128(self.len) == 0
    }
}

const fn v4(net: [u8; 4], len: u8, name: &'static str) -> V4Block {
    V4Block { net: Ipv4Addr::new(net[0], net[1], net[2], net[3]), len, name }
}

const fn v6(net: [u16; 8], len: u8, name: &'static str, rule: V6Rule) -> V6Block {
    let [a, b, c, d, e, f, g, h] = net;
    V6Block { net: Ipv6Addr::new(a, b, c, d, e, f, g, h), len, name, rule }
}

/// Every refused IPv4 block, in registry order. Overlaps are fine: the longest prefix names
/// the address.
const V4_BLOCKS: &[V4Block] = &[
    v4([0, 0, 0, 0], 8, "\"This network\""),
    v4([0, 0, 0, 0], 32, "\"This host on this network\""),
    v4([10, 0, 0, 0], 8, "Private-Use"),
    v4([100, 64, 0, 0], 10, "Shared Address Space"),
    v4([127, 0, 0, 0], 8, "Loopback"),
    v4([169, 254, 0, 0], 16, "Link Local"),
    v4([172, 16, 0, 0], 12, "Private-Use"),
    v4([192, 0, 0, 0], 24, "IETF Protocol Assignments"),
    v4([192, 0, 0, 0], 29, "IPv4 Service Continuity Prefix"),
    v4([192, 0, 0, 8], 32, "IPv4 dummy address"),
    v4([192, 0, 0, 9], 32, "Port Control Protocol Anycast"), // registry: global; refused with its /24
    v4([192, 0, 0, 10], 32, "Traversal Using Relays around NAT Anycast"), // registry: global; as above
    v4([192, 0, 0, 170], 31, "NAT64/DNS64 Discovery"),       // the registry lists .170/32 and .171/32
    v4([192, 0, 2, 0], 24, "Documentation (TEST-NET-1)"),
    v4([192, 31, 196, 0], 24, "AS112-v4"), // registry: global; anycast DNS sink
    v4([192, 52, 193, 0], 24, "AMT"),      // registry: global; multicast tunnelling relays
    v4([192, 88, 99, 0], 24, "Deprecated (6to4 Relay Anycast)"), // terminated 2015
    v4([192, 88, 99, 2], 32, "6a44-relay anycast address"),
    v4([192, 168, 0, 0], 16, "Private-Use"),
    v4([192, 175, 48, 0], 24, "Direct Delegation AS112 Service"), // registry: global; anycast DNS sink
    v4([198, 18, 0, 0], 15, "Benchmarking"),
    v4([198, 51, 100, 0], 24, "Documentation (TEST-NET-2)"),
    v4([203, 0, 113, 0], 24, "Documentation (TEST-NET-3)"),
    v4([224, 0, 0, 0], 4, "Multicast"), // IPv4 Multicast Address Space registry
    v4([240, 0, 0, 0], 4, "Reserved"),
    v4([255, 255, 255, 255], 32, "Limited Broadcast"),
];

/// Every special-purpose IPv6 block, in registry order. The longest matching prefix decides,
/// so ::/128 and ::1/128 win over ::/96, and ::/96 and the NAT64 /96 win over ::/8.
const V6_BLOCKS: &[V6Block] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 8, "Reserved by IETF", Refuse), // IPv6 Address Space registry
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "Loopback Address", Refuse),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "Unspecified Address", Refuse),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible Address (deprecated)", AsCarried { shift: 0 }), // RFC 4291 2.5.5.1
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped Address", AsCarried { shift: 0 }),
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "IPv4-IPv6 Translat.", AsCarried { shift: 0 }),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "IPv4-IPv6 Translat.", Refuse), // local-use NAT64
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "Discard-Only Address Block", Refuse),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "Dummy IPv6 Prefix", Refuse),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF Protocol Assignments", Refuse),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "TEREDO", Refuse), // registry: N/A
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "Port Control Protocol Anycast", Refuse), // registry: global
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "Traversal Using Relays around NAT Anycast", Refuse), // registry: global
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "DNS-SD Service Registration Protocol Anycast", Refuse), // registry: global
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "Benchmarking", Refuse),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", Refuse), // registry: global
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112-v6", Refuse), // registry: global
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "Deprecated (previously ORCHID)", Refuse), // terminated 2014
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2", Refuse), // registry: global
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, "Drone Remote ID Protocol Entity Tags (DETs) Prefix", Refuse), // registry: global
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "Documentation", Refuse),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", RefuseNamingCarried { shift: 80 }), // registry: N/A
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, "Direct Delegation AS112 Service", Refuse), // registry: global
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "Documentation", Refuse),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "Segment Routing (SRv6) SIDs", Refuse),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "Unique-Local", Refuse),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "Link-Local Unicast", Refuse),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "Site-Local (deprecated)", Refuse), // IPv6 Address Space registry
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "Multicast", Refuse),                // IPv6 Address Space registry
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason(s: &str) -> Option<&'static str> {
        non_public_reason(s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    /// Check a list of (address, expected reason) pairs, reporting every mismatch at once.
    fn check(cases: &[(&str, Option<&str>)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(addr, want)| reason(addr) != *want)
            .map(|(addr, want)| format!("{addr}: got {:?}, want {want:?}", reason(addr)))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    const PUBLIC: Option<&str> = None;

    #[test]
    fn ipv4_block_boundaries() {
        check(&[
            ("0.0.0.0", Some("\"This host on this network\"")),
            ("0.0.0.1", Some("\"This network\"")),
            ("0.255.255.255", Some("\"This network\"")),
            ("1.0.0.0", PUBLIC),
            ("9.255.255.255", PUBLIC),
            ("10.0.0.0", Some("Private-Use")),
            ("10.255.255.255", Some("Private-Use")),
            ("11.0.0.0", PUBLIC),
            ("100.63.255.255", PUBLIC),
            ("100.64.0.0", Some("Shared Address Space")),
            ("100.127.255.255", Some("Shared Address Space")),
            ("100.128.0.0", PUBLIC),
            ("126.255.255.255", PUBLIC),
            ("127.0.0.0", Some("Loopback")),
            ("127.255.255.255", Some("Loopback")),
            ("128.0.0.0", PUBLIC),
            ("169.253.255.255", PUBLIC),
            ("169.254.0.0", Some("Link Local")),
            ("169.254.169.254", Some("Link Local")),
            ("169.254.255.255", Some("Link Local")),
            ("169.255.0.0", PUBLIC),
            ("172.15.255.255", PUBLIC),
            ("172.16.0.0", Some("Private-Use")),
            ("172.31.255.255", Some("Private-Use")),
            ("172.32.0.0", PUBLIC),
            ("191.255.255.255", PUBLIC),
            ("192.0.0.0", Some("IPv4 Service Continuity Prefix")),
            ("192.0.0.7", Some("IPv4 Service Continuity Prefix")),
            ("192.0.0.8", Some("IPv4 dummy address")),
            ("192.0.0.9", Some("Port Control Protocol Anycast")),
            ("192.0.0.10", Some("Traversal Using Relays around NAT Anycast")),
            ("192.0.0.11", Some("IETF Protocol Assignments")),
            ("192.0.0.169", Some("IETF Protocol Assignments")),
            ("192.0.0.170", Some("NAT64/DNS64 Discovery")),
            ("192.0.0.171", Some("NAT64/DNS64 Discovery")),
            ("192.0.0.172", Some("IETF Protocol Assignments")),
            ("192.0.0.255", Some("IETF Protocol Assignments")),
            ("192.0.1.0", PUBLIC),
            ("192.0.1.255", PUBLIC),
            ("192.0.2.0", Some("Documentation (TEST-NET-1)")),
            ("192.0.2.255", Some("Documentation (TEST-NET-1)")),
            ("192.0.3.0", PUBLIC),
            ("192.31.195.255", PUBLIC),
            ("192.31.196.0", Some("AS112-v4")),
            ("192.31.196.255", Some("AS112-v4")),
            ("192.31.197.0", PUBLIC),
            ("192.52.192.255", PUBLIC),
            ("192.52.193.0", Some("AMT")),
            ("192.52.193.255", Some("AMT")),
            ("192.52.194.0", PUBLIC),
            ("192.88.98.255", PUBLIC),
            ("192.88.99.0", Some("Deprecated (6to4 Relay Anycast)")),
            ("192.88.99.1", Some("Deprecated (6to4 Relay Anycast)")),
            ("192.88.99.2", Some("6a44-relay anycast address")),
            ("192.88.99.3", Some("Deprecated (6to4 Relay Anycast)")),
            ("192.88.99.255", Some("Deprecated (6to4 Relay Anycast)")),
            ("192.88.100.0", PUBLIC),
            ("192.167.255.255", PUBLIC),
            ("192.168.0.0", Some("Private-Use")),
            ("192.168.255.255", Some("Private-Use")),
            ("192.169.0.0", PUBLIC),
            ("192.175.47.255", PUBLIC),
            ("192.175.48.0", Some("Direct Delegation AS112 Service")),
            ("192.175.48.255", Some("Direct Delegation AS112 Service")),
            ("192.175.49.0", PUBLIC),
            ("198.17.255.255", PUBLIC),
            ("198.18.0.0", Some("Benchmarking")),
            ("198.19.255.255", Some("Benchmarking")),
            ("198.20.0.0", PUBLIC),
            ("198.51.99.255", PUBLIC),
            ("198.51.100.0", Some("Documentation (TEST-NET-2)")),
            ("198.51.100.255", Some("Documentation (TEST-NET-2)")),
            ("198.51.101.0", PUBLIC),
            ("203.0.112.255", PUBLIC),
            ("203.0.113.0", Some("Documentation (TEST-NET-3)")),
            ("203.0.113.255", Some("Documentation (TEST-NET-3)")),
            ("203.0.114.0", PUBLIC),
            ("223.255.255.255", PUBLIC),
            ("224.0.0.0", Some("Multicast")),
            ("239.255.255.255", Some("Multicast")),
            ("240.0.0.0", Some("Reserved")),
            ("255.255.255.254", Some("Reserved")),
            ("255.255.255.255", Some("Limited Broadcast")),
        ]);
    }

    #[test]
    fn ipv6_block_boundaries() {
        check(&[
            // ::/8 and the IPv4-carrying forms inside it.
            ("::", Some("Unspecified Address")),
            ("::1", Some("Loopback Address")),
            ("::2", Some("\"This network\"")), // ::0.0.0.2, IPv4-compatible
            ("::1:0:0", Some("Reserved by IETF")),
            ("::fffe:ffff:ffff", Some("Reserved by IETF")),
            ("::ffff:0:0", Some("\"This host on this network\"")),
            ("::ffff:255.255.255.255", Some("Limited Broadcast")),
            ("::1:0:0:0", Some("Reserved by IETF")),
            ("::ffff:0:0:0", Some("Reserved by IETF")), // IPv4-translated (RFC 2765), obsolete
            ("::ffff:0:808:808", Some("Reserved by IETF")),
            ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Reserved by IETF")),
            // NAT64.
            ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", Some("Reserved by IETF")),
            ("64:ff9b::", Some("\"This host on this network\"")),
            ("64:ff9b::808:808", PUBLIC),
            ("64:ff9b::ffff:ffff", Some("Limited Broadcast")),
            ("64:ff9b::1:808:808", Some("Reserved by IETF")),
            ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", Some("Reserved by IETF")),
            ("64:ff9b:1::", Some("IPv4-IPv6 Translat.")),
            ("64:ff9b:1::808:808", Some("IPv4-IPv6 Translat.")),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Some("IPv4-IPv6 Translat.")),
            ("64:ff9b:2::", Some("Reserved by IETF")),
            // Discard-only and dummy.
            ("100::", Some("Discard-Only Address Block")),
            ("100::ffff:ffff:ffff:ffff", Some("Discard-Only Address Block")),
            ("100:0:0:1::", Some("Dummy IPv6 Prefix")),
            ("100:0:0:1:ffff:ffff:ffff:ffff", Some("Dummy IPv6 Prefix")),
            ("100:0:0:2::", PUBLIC),
            // 2001::/23 and what the registry carves out of it.
            ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("2001::", Some("TEREDO")),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Some("TEREDO")),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some("TEREDO")),
            ("2001:1::", Some("IETF Protocol Assignments")),
            ("2001:1::1", Some("Port Control Protocol Anycast")),
            ("2001:1::2", Some("Traversal Using Relays around NAT Anycast")),
            ("2001:1::3", Some("DNS-SD Service Registration Protocol Anycast")),
            ("2001:1::4", Some("IETF Protocol Assignments")),
            ("2001:2::", Some("Benchmarking")),
            ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some("Benchmarking")),
            ("2001:2:1::", Some("IETF Protocol Assignments")),
            ("2001:3::", Some("AMT")),
            ("2001:3:ffff:ffff:ffff:ffff:ffff:ffff", Some("AMT")),
            ("2001:4:111:ffff:ffff:ffff:ffff:ffff", Some("IETF Protocol Assignments")),
            ("2001:4:112::", Some("AS112-v6")),
            ("2001:4:112:ffff:ffff:ffff:ffff:ffff", Some("AS112-v6")),
            ("2001:4:113::", Some("IETF Protocol Assignments")),
            ("2001:f:ffff:ffff:ffff:ffff:ffff:ffff", Some("IETF Protocol Assignments")),
            ("2001:10::", Some("Deprecated (previously ORCHID)")),
            ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", Some("Deprecated (previously ORCHID)")),
            ("2001:20::", Some("ORCHIDv2")),
            ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", Some("ORCHIDv2")),
            ("2001:30::", Some("Drone Remote ID Protocol Entity Tags (DETs) Prefix")),
            ("2001:3f:ffff:ffff:ffff:ffff:ffff:ffff", Some("Drone Remote ID Protocol Entity Tags (DETs) Prefix")),
            ("2001:40::", Some("IETF Protocol Assignments")),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", Some("IETF Protocol Assignments")),
            ("2001:200::", PUBLIC),
            // Documentation.
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("2001:db8::", Some("Documentation")),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some("Documentation")),
            ("2001:db9::", PUBLIC),
            // 6to4: always refused, named after the carried IPv4 address when that one is special.
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("2002::", Some("\"This host on this network\"")),
            ("2002:7f00:1::", Some("Loopback")),
            ("2002:a00:1::1", Some("Private-Use")),
            ("2002:808:808::", Some("6to4")),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Limited Broadcast")),
            ("2003::", PUBLIC),
            // AS112 direct delegation.
            ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("2620:4f:8000::", Some("Direct Delegation AS112 Service")),
            ("2620:4f:8000:ffff:ffff:ffff:ffff:ffff", Some("Direct Delegation AS112 Service")),
            ("2620:4f:8001::", PUBLIC),
            // Documentation (RFC 9637).
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("3fff::", Some("Documentation")),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Documentation")),
            ("3fff:1000::", PUBLIC),
            // SRv6 SIDs.
            ("5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("5f00::", Some("Segment Routing (SRv6) SIDs")),
            ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Segment Routing (SRv6) SIDs")),
            ("5f01::", PUBLIC),
            // Unique-local, link-local, site-local, multicast.
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("fc00::", Some("Unique-Local")),
            ("fd00::1", Some("Unique-Local")),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Unique-Local")),
            ("fe00::", PUBLIC), // unallocated, unrouted; see the module documentation
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", PUBLIC),
            ("fe80::", Some("Link-Local Unicast")),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Link-Local Unicast")),
            ("fec0::", Some("Site-Local (deprecated)")),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Site-Local (deprecated)")),
            ("ff00::", Some("Multicast")),
            ("ff02::1", Some("Multicast")),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("Multicast")),
        ]);
    }

    #[test]
    fn ipv6_forms_that_carry_ipv4_are_judged_by_it() {
        check(&[
            ("::ffff:127.0.0.1", Some("Loopback")),
            ("::ffff:10.1.2.3", Some("Private-Use")),
            ("::ffff:169.254.169.254", Some("Link Local")),
            ("::ffff:8.8.8.8", PUBLIC),
            ("::127.0.0.1", Some("Loopback")),
            ("::10.0.0.1", Some("Private-Use")),
            ("::8.8.8.8", PUBLIC),
            ("64:ff9b::7f00:1", Some("Loopback")),
            ("64:ff9b::a00:1", Some("Private-Use")),
            ("64:ff9b::192.168.1.1", Some("Private-Use")),
            ("64:ff9b::808:808", PUBLIC),
            ("2002:7f00:1::", Some("Loopback")),
            ("2002:c0a8:101::", Some("Private-Use")),
            ("2002:a9fe:a9fe::", Some("Link Local")),
        ]);
    }

    #[test]
    fn well_known_public_addresses_are_public() {
        for addr in [
            "8.8.8.8",
            "8.8.4.4",
            "1.1.1.1",
            "9.9.9.9",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2620:fe::fe",
            "2a00:1450:4001:80b::200e",
        ] {
            assert!(is_public(addr.parse().unwrap()), "{addr} should be public");
        }
    }

    #[test]
    fn tables_are_well_formed() {
        let mut seen4 = std::collections::HashSet::new();
        for b in V4_BLOCKS {
            assert!(b.len <= 32, "{}/{}", b.net, b.len);
            assert_eq!(b.net.to_bits() & !mask32(b.len), 0, "host bits set in {}/{}", b.net, b.len);
            assert!(seen4.insert((b.net, b.len)), "{}/{} twice", b.net, b.len);
            assert!(!b.name.is_empty());
        }
        let mut seen6 = std::collections::HashSet::new();
        for b in V6_BLOCKS {
            assert!(b.len <= 128, "{}/{}", b.net, b.len);
            assert_eq!(b.net.to_bits() & !mask128(b.len), 0, "host bits set in {}/{}", b.net, b.len);
            assert!(seen6.insert((b.net, b.len)), "{}/{} twice", b.net, b.len);
            assert!(!b.name.is_empty());
            if let AsCarried { shift } | RefuseNamingCarried { shift } = b.rule {
                assert!(u32::from(b.len) + shift + 32 <= 128, "{}/{}: carried IPv4 overlaps the prefix", b.net, b.len);
            }
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask32(0), 0);
        assert_eq!(mask32(8), 0xff00_0000);
        assert_eq!(mask32(32), u32::MAX);
        assert_eq!(mask128(0), 0);
        assert_eq!(mask128(7), 0xfe << 120);
        assert_eq!(mask128(128), u128::MAX);
    }

    /// For every block: its first and last addresses are refused, and the addresses just
    /// outside it are not refused under its name (they are public or in a neighbouring block).
    #[test]
    fn every_block_edge_is_exact() {
        for b in V4_BLOCKS {
            let first = b.net.to_bits();
            let last = first | !mask32(b.len);
            for inside in [first, last] {
                assert!(!is_public(Ipv4Addr::from_bits(inside).into()), "{}/{}", b.net, b.len);
            }
            for outside in [first.checked_sub(1), last.checked_add(1)].into_iter().flatten() {
                let ip = Ipv4Addr::from_bits(outside);
                assert_ne!(non_public_reason(ip.into()), Some(b.name), "{ip} is outside {}/{}", b.net, b.len);
            }
        }
        for b in V6_BLOCKS {
            let first = b.net.to_bits();
            let last = first | !mask128(b.len);
            for inside in [first, last] {
                assert!(!is_public(Ipv6Addr::from_bits(inside).into()), "{}/{}", b.net, b.len);
            }
            for outside in [first.checked_sub(1), last.checked_add(1)].into_iter().flatten() {
                let ip = Ipv6Addr::from_bits(outside);
                assert_ne!(non_public_reason(ip.into()), Some(b.name), "{ip} is outside {}/{}", b.net, b.len);
            }
        }
    }

    fn nat64(v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from_bits(0x0064_ff9b << 96 | u128::from(v4.to_bits()))
    }

    fn six_to_four(v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from_bits(0x2002 << 112 | u128::from(v4.to_bits()) << 80 | 1)
    }

    fn wrapped_forms_agree(v4: Ipv4Addr) -> Result<(), TestCaseError> {
        let judged = non_public_reason(v4.into());
        prop_assert_eq!(non_public_reason(v4.to_ipv6_mapped().into()), judged, "mapped {}", v4);
        prop_assert_eq!(non_public_reason(nat64(v4).into()), judged, "NAT64 {}", v4);
        prop_assert_eq!(is_public(v4.to_ipv6_compatible().into()), judged.is_none(), "compatible {}", v4);
        let via_6to4 = non_public_reason(six_to_four(v4).into());
        prop_assert_eq!(via_6to4, Some(judged.unwrap_or("6to4")), "6to4 {}", v4);
        Ok(())
    }

    proptest! {
        #[test]
        fn any_ipv4_is_judged_the_same_when_wrapped(bits in any::<u32>()) {
            wrapped_forms_agree(Ipv4Addr::from_bits(bits))?;
        }

        #[test]
        fn non_public_ipv4_stays_non_public_when_wrapped(i in 0..V4_BLOCKS.len(), host in any::<u32>()) {
            let b = &V4_BLOCKS[i];
            let v4 = Ipv4Addr::from_bits(b.net.to_bits() | (host & !mask32(b.len)));
            prop_assert!(!is_public(v4.into()));
            prop_assert!(!is_public(v4.to_ipv6_mapped().into()));
            prop_assert!(!is_public(nat64(v4).into()));
            wrapped_forms_agree(v4)?;
        }
    }
}
