//! H.264 access units as the SFU hands them over (Annex B: NAL units behind `00 00 01` or
//! `00 00 00 01` start codes): keyframe detection, the picture size from the SPS, and the
//! conversion Matroska wants (length-prefixed NAL units, and an `avcC` record with the SPS and
//! PPS as CodecPrivate). Pure byte work; must not do I/O.

/// NAL unit types used here.
const IDR: u8 = 5;
/// An Annex B start code.
const START: [u8; 4] = [0, 0, 0, 1];
const SPS: u8 = 7;
const PPS: u8 = 8;

/// The NAL units of an Annex B access unit, without their start codes.
pub fn nal_units(frame: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= frame.len() {
        if frame[i] == 0 && frame[i + 1] == 0 && frame[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(frame.len(), |next| next - 3);
        // A four-byte start code leaves one zero behind the previous unit.
        while end > s && frame[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            out.push(&frame[s..end]);
        }
    }
    out
}

fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// True when the access unit holds a coded picture (a slice: NAL types 1 to 5), not only
/// parameter sets or SEI.
pub fn has_picture(frame: &[u8]) -> bool {
    nal_units(frame).iter().any(|n| (1..=IDR).contains(&nal_type(n)))
}

/// True when the access unit holds an IDR picture.
pub fn h264_is_keyframe(frame: &[u8]) -> bool {
    nal_units(frame).iter().any(|n| nal_type(n) == IDR)
}

/// The access unit as Matroska stores it: each NAL unit behind its 4-byte big-endian length.
pub fn to_length_prefixed(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 8);
    for nal in nal_units(frame) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// The `AVCDecoderConfigurationRecord` (CodecPrivate of `V_MPEG4/ISO/AVC`) from the SPS and
/// PPS of one access unit, with its picture size; `None` without both.
pub fn avc_config(frame: &[u8]) -> Option<(Vec<u8>, (u32, u32))> {
    let mut sets = ParameterSets::default();
    sets.update(frame);
    sets.config()
}

/// The latest SPS and PPS seen in a stream: some encoders send them in their own access unit
/// ahead of the IDR rather than with it.
#[derive(Debug, Default, Clone)]
pub struct ParameterSets {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

impl ParameterSets {
    /// Keeps the access unit's SPS and PPS, if it has any.
    pub fn update(&mut self, frame: &[u8]) {
        for nal in nal_units(frame) {
            match nal_type(nal) {
                SPS if nal.len() >= 4 && u16::try_from(nal.len()).is_ok() => self.sps = Some(nal.to_vec()),
                PPS if u16::try_from(nal.len()).is_ok() => self.pps = Some(nal.to_vec()),
                _ => {}
            }
        }
    }

    /// The access unit with the known SPS and PPS in front when it is an IDR without them
    /// (so that a decoder can start at every keyframe, as it can with what browsers send).
    pub fn with_parameter_sets<'a>(&self, frame: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let nals = nal_units(frame);
        let has_sets = nals.iter().any(|n| nal_type(n) == SPS);
        let idr = nals.iter().any(|n| nal_type(n) == IDR);
        match (&self.sps, &self.pps) {
            (Some(sps), Some(pps)) if idr && !has_sets => [&START[..], sps, &START[..], pps, frame].concat().into(),
            _ => frame.into(),
        }
    }

    /// The `avcC` record and picture size, once both are known (and the SPS parses).
    pub fn config(&self) -> Option<(Vec<u8>, (u32, u32))> {
        let (sps, pps) = (self.sps.as_deref()?, self.pps.as_deref()?);
        let size = sps_size(sps)?;
        let mut c = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        c.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        c.extend_from_slice(sps);
        c.push(1);
        c.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        c.extend_from_slice(pps);
        Some((c, size))
    }
}

/// Exp-Golomb reader over an RBSP (emulation prevention bytes removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal_payload: &[u8]) -> Bits {
        let mut data = Vec::with_capacity(nal_payload.len());
        let mut zeros = 0;
        for &b in nal_payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Bits { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let v = self.ue()?;
        Some(if v % 2 == 1 { v.div_ceil(2) as i32 } else { -((v / 2) as i32) })
    }
}

/// Picture size (after cropping) from an SPS NAL unit; `None` for SPSs this parser does not
/// follow (scaling matrices).
pub fn sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    let mut b = Bits::new(sps.get(1..)?);
    let profile = b.bits(8)?;
    b.bits(16)?; // constraint flags, level
    b.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(profile, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format = b.ue()?;
        if chroma_format == 3 {
            b.bit()?; // separate_colour_plane_flag
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.bit()?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? == 1 {
            return None; // seq_scaling_matrix_present_flag
        }
    }
    b.ue()?; // log2_max_frame_num_minus4
    match b.ue()? {
        0 => {
            b.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            b.bit()?;
            b.se()?;
            b.se()?;
            for _ in 0..b.ue()? {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.bit()?; // gaps_in_frame_num_value_allowed_flag
    // u64 arithmetic: every field comes from the publisher and may be absurd.
    let width_mbs = u64::from(b.ue()?) + 1;
    let height_units = u64::from(b.ue()?) + 1;
    let frame_mbs_only = u64::from(b.bit()?);
    if frame_mbs_only == 0 {
        b.bit()?; // mb_adaptive_frame_field_flag
    }
    b.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0u64, 0u64);
    if b.bit()? == 1 {
        let (l, r, t, bo) = (u64::from(b.ue()?), u64::from(b.ue()?), u64::from(b.ue()?), u64::from(b.ue()?));
        let (unit_x, unit_y) = match chroma_format {
            0 => (1, 2 - frame_mbs_only),
            1 => (2, 2 * (2 - frame_mbs_only)),
            2 => (2, 2 - frame_mbs_only),
            _ => (1, 2 - frame_mbs_only),
        };
        crop_x = unit_x * (l + r);
        crop_y = unit_y * (t + bo);
    }
    let width = u32::try_from((width_mbs * 16).checked_sub(crop_x)?).ok()?;
    let height = u32::try_from(((2 - frame_mbs_only) * height_units * 16).checked_sub(crop_y)?).ok()?;
    (width > 0 && height > 0).then_some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_splits_into_nal_units() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9];
        assert_eq!(nal_units(&au), [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9, 9]]);
        assert!(h264_is_keyframe(&au));
        assert!(!h264_is_keyframe(&[0, 0, 1, 0x41, 7]));
        assert_eq!(to_length_prefixed(&au[7..]), [0, 0, 0, 2, 0x68, 3, 0, 0, 0, 3, 0x65, 9, 9]);
    }

    #[test]
    fn sps_sizes() {
        // SPSs written by x264 (ffmpeg -c:v libx264 -f h264): High 320x240, Baseline 640x360
        // (coded as 368 lines and cropped).
        let high = [
            0x67, 0x64, 0x00, 0x0c, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
            0x03, 0x01, 0xe0, 0xf1, 0x42, 0x99, 0x60,
        ];
        assert_eq!(sps_size(&high), Some((320, 240)));
        let baseline = [
            0x67, 0x42, 0xc0, 0x16, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00,
            0x03, 0x00, 0x1e, 0x0f, 0x16, 0x2e, 0x48,
        ];
        assert_eq!(sps_size(&baseline), Some((640, 360)));
        assert_eq!(sps_size(&[0x67]), None);
        // Hostile input never panics: all-ones fields, long zero runs, truncations.
        for junk in [
            &[0x67, 0x64, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x67, 0x42, 0, 0, 0, 0, 0, 0, 0, 1, 0xff],
            &high[..7],
            &[0x67; 40],
        ] {
            let _ = sps_size(junk);
        }
        let big = [
            0x67, 0x42, 0xc0, 0x16, 0x80, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x01, 0xff,
            0xff, 0xff, 0xfe, 0xff,
        ];
        let _ = sps_size(&big);
    }
}
