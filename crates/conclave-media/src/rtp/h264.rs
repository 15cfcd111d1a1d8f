//! H.264 over RTP (RFC 6184): what a packet carries that forwarding cares about, read from
//! its NAL unit headers: an IDR slice (a keyframe), SPS and PPS (the parameter sets a
//! decoder needs before the IDR).
//!
//! Owns NAL unit type inspection of single NAL unit packets, STAP-A aggregates and FU-A
//! fragments. It must not depacketize, rewrite, or decide what to forward.

/// NAL unit types (ITU-T H.264 table 7-1, RFC 6184 section 5.2).
const IDR_SLICE: u8 = 5;
const SPS: u8 = 7;
const PPS: u8 = 8;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// What one H.264 RTP packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct H264Info {
    /// Some of an IDR slice.
    pub idr: bool,
    pub sps: bool,
    pub pps: bool,
    /// The packet can begin a decodable stream: it carries an SPS (parameter sets come
    /// first), or the start of an IDR slice.
    pub starts_keyframe: bool,
}

/// Reads the NAL unit types of one packet. `None` for an empty or malformed packet.
pub(crate) fn inspect(payload: &[u8]) -> Option<H264Info> {
    let header = *payload.first()?;
    let mut info = H264Info::default();
    let saw = |info: &mut H264Info, nal_type: u8, starts: bool| match nal_type {
        IDR_SLICE => {
            info.idr = true;
            info.starts_keyframe |= starts;
        }
        SPS => {
            info.sps = true;
            info.starts_keyframe = true;
        }
        PPS => info.pps = true,
        _ => {}
    };
    match header & 0x1f {
        0 => return None,
        STAP_A => {
            let mut rest = &payload[1..];
            while !rest.is_empty() {
                let size = usize::from(u16::from_be_bytes([rest[0], *rest.get(1)?]));
                let nal = rest.get(2..2 + size).filter(|n| !n.is_empty())?;
                saw(&mut info, nal[0] & 0x1f, true);
                rest = &rest[2 + size..];
            }
        }
        FU_A => {
            let fu = *payload.get(1)?;
            saw(&mut info, fu & 0x1f, fu & 0x80 != 0);
        }
        single @ 1..=23 => saw(&mut info, single, true),
        // STAP-B, MTAPs and FU-B need interleaved mode, which WebRTC never negotiates.
        _ => {}
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS_NAL: &[u8] = &[0x67, 0x42, 0xc0, 0x1f];
    const PPS_NAL: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for nal in nals {
            p.extend((nal.len() as u16).to_be_bytes());
            p.extend(*nal);
        }
        p
    }

    #[test]
    fn single_nal_units() {
        let idr = inspect(&[0x65, 0x88, 0x84]).unwrap();
        assert!(idr.idr && idr.starts_keyframe && !idr.sps);
        let delta = inspect(&[0x41, 0x9a]).unwrap();
        assert_eq!(delta, H264Info::default());
        let sps = inspect(SPS_NAL).unwrap();
        assert!(sps.sps && sps.starts_keyframe, "parameter sets open the keyframe");
        assert!(inspect(PPS_NAL).unwrap().pps);
    }

    #[test]
    fn stap_a_with_parameter_sets_and_idr() {
        let p = stap_a(&[SPS_NAL, PPS_NAL, &[0x65, 0x01]]);
        assert_eq!(inspect(&p), Some(H264Info { idr: true, sps: true, pps: true, starts_keyframe: true }));
        let mut cut = p.clone();
        cut.truncate(p.len() - 1);
        assert_eq!(inspect(&cut), None, "a size running past the end is malformed");
        assert_eq!(inspect(&stap_a(&[&[0x41, 0x00]])), Some(H264Info::default()));
    }

    #[test]
    fn fu_a_only_its_start_opens_a_keyframe() {
        let start = inspect(&[0x7c, 0x85, 0x00]).unwrap();
        assert!(start.idr && start.starts_keyframe);
        let middle = inspect(&[0x7c, 0x05, 0x00]).unwrap();
        assert!(middle.idr && !middle.starts_keyframe);
        let end = inspect(&[0x7c, 0x45, 0x00]).unwrap();
        assert!(end.idr && !end.starts_keyframe);
        assert!(!inspect(&[0x7c, 0x81, 0x00]).unwrap().idr, "a non-IDR slice");
        assert_eq!(inspect(&[0x7c]), None);
        assert_eq!(inspect(&[]), None);
    }
}
