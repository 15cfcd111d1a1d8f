//! Finishing a live recording while it streams: an encrypted per-stream recording is written
//! in live mode (the muxer cannot seek through the age stream), so its WebM (libwebm) or
//! Matroska (`recorder::mkv`) has an unknown-size Segment and Clusters, no Duration (or a
//! Duration of 0) and no Cues. `finish_live` reads the decrypted stream twice, never holding
//! more than one block in memory and never writing plaintext anywhere: the first pass indexes
//! it (track types, Cluster spans, the last block's end, one cue point per Cluster), the
//! second streams it back with known sizes, a SeekHead, the Duration in Info and Cues at the
//! end, as a plain (seekable) recording has them. The frames are copied byte for byte.
//!
//! Owns: that rewrite of the container structure. Must not decrypt, open or delete files (the
//! caller passes a function that opens the plaintext stream), nor change a frame.

use crate::error::{ArchiveError, Result};
use crate::recorder::opus_packet_duration_ns;
use std::collections::VecDeque;
use std::io::{BufReader, ErrorKind, Read};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_TYPE: u32 = 0x83;
const CODEC_ID: u32 = 0x86;
const CLUSTER: u32 = 0x1F43_B675;
const CLUSTER_TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const BLOCK_DURATION: u32 = 0x9B;
const REFERENCE_BLOCK: u32 = 0xFB;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;
const TAGS: u32 = 0x1254_C367;
const CHAPTERS: u32 = 0x1043_A770;
const ATTACHMENTS: u32 = 0x1941_A469;
const VOID: u32 = 0xEC;
const CRC32: u32 = 0xBF;

/// Level-1 elements: one of these inside an unknown-size Cluster ends the Cluster.
const TOP_LEVEL: [u32; 10] = [EBML, SEGMENT, SEEK_HEAD, INFO, TRACKS, CLUSTER, CUES, TAGS, CHAPTERS, ATTACHMENTS];

/// The largest element read into memory whole (a header element or one block).
const MAX_ELEMENT: u64 = 64 * 1024 * 1024;

/// A finished recording, streamed from a second read of the live one.
pub struct Finished<R: Read> {
    src: BufReader<R>,
    src_pos: u64,
    pieces: VecDeque<Piece>,
    duration_ms: u64,
    len: u64,
}

enum Piece {
    Bytes(Vec<u8>, usize),
    /// `len` bytes of the source from offset `from`.
    Copy {
        from: u64,
        len: u64,
    },
}

impl<R: Read> Finished<R> {
    /// The Duration written into the header (the end of the last block).
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// Bytes this reader yields in all.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when it yields nothing (never, for a recording that had a header).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<R: Read> Read for Finished<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(piece) = self.pieces.front_mut() else { return Ok(0) };
            match piece {
                Piece::Bytes(b, at) => {
                    let n = (b.len() - *at).min(buf.len());
                    buf[..n].copy_from_slice(&b[*at..*at + n]);
                    *at += n;
                    if *at == b.len() {
                        self.pieces.pop_front();
                    }
                    if n > 0 || buf.is_empty() {
                        return Ok(n);
                    }
                }
                Piece::Copy { from, len } => {
                    if *len == 0 {
                        self.pieces.pop_front();
                        continue;
                    }
                    if self.src_pos < *from {
                        let gap = *from - self.src_pos;
                        let skipped = std::io::copy(&mut (&mut self.src).take(gap), &mut std::io::sink())?;
                        self.src_pos += skipped;
                        if skipped < gap {
                            return Err(changed());
                        }
                    }
                    let want = usize::try_from(*len).unwrap_or(usize::MAX).min(buf.len());
                    let n = self.src.read(&mut buf[..want])?;
                    if n == 0 && want > 0 {
                        return Err(changed());
                    }
                    self.src_pos += n as u64;
                    *from += n as u64;
                    *len -= n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

fn changed() -> std::io::Error {
    std::io::Error::new(ErrorKind::UnexpectedEof, "the recording changed between the two reads")
}

/// Indexes the live recording `open()` yields, then opens it again and returns a reader of
/// the finished file (see the module doc). Fails when the first read is not a WebM or
/// Matroska file; a recording cut short ends at its last complete block.
pub fn finish_live<R: Read>(mut open: impl FnMut() -> Result<R>) -> Result<Finished<R>> {
    let index = scan(&mut Src { r: BufReader::new(open()?), pos: 0 })?;
    let (pieces, len) = index.plan();
    Ok(Finished { src: BufReader::new(open()?), src_pos: 0, pieces, duration_ms: index.duration_ms(), len })
}

/// What the first pass learned.
#[derive(Default)]
struct Index {
    ebml_header: Vec<u8>,
    /// Info's children without Duration.
    info: Vec<u8>,
    timecode_scale: u64,
    tracks: Option<Vec<u8>>,
    cue_track: Option<u64>,
    /// Tags, Chapters, Attachments found before the first Cluster (copied as they are).
    extras: Vec<(u32, Vec<u8>)>,
    clusters: Vec<ClusterSpan>,
    /// End of the last block, in nanoseconds.
    end_ns: u64,
}

struct ClusterSpan {
    payload_from: u64,
    payload_len: u64,
    /// Timecode of the Cluster's first keyframe on the cue track.
    cue: Option<u64>,
}

/// Track number → (type, codec).
#[derive(Default)]
struct Tracks {
    entries: Vec<(u64, u64, Vec<u8>)>,
}

impl Tracks {
    fn parse(payload: &[u8]) -> Result<Tracks> {
        let mut t = Tracks::default();
        for (id, entry) in children(payload)? {
            if id != TRACK_ENTRY {
                continue;
            }
            let (mut number, mut kind, mut codec) = (0, 0, Vec::new());
            for (id, v) in children(entry)? {
                match id {
                    TRACK_NUMBER => number = uint(v),
                    TRACK_TYPE => kind = uint(v),
                    CODEC_ID => codec = v.to_vec(),
                    _ => {}
                }
            }
            t.entries.push((number, kind, codec));
        }
        Ok(t)
    }

    /// Cues point at video keyframes, or at audio for an audio-only recording.
    fn cue_track(&self) -> Option<u64> {
        let of = |kind| self.entries.iter().find(|e| e.1 == kind).map(|e| e.0);
        of(1).or_else(|| of(2)).or_else(|| self.entries.first().map(|e| e.0))
    }

    fn is_opus(&self, track: u64) -> bool {
        self.entries.iter().any(|e| e.0 == track && e.2 == b"A_OPUS")
    }
}

/// The source of the first pass, with its position.
struct Src<R> {
    r: BufReader<R>,
    pos: u64,
}

/// A read that may meet the end of the data: `Ok(None)` there (also inside a torn element).
type Partial<T> = Result<Option<T>>;

impl<R: Read> Src<R> {
    fn byte(&mut self) -> Partial<u8> {
        let mut b = [0u8; 1];
        Ok(self.exact(&mut b)?.map(|()| b[0]))
    }

    fn exact(&mut self, buf: &mut [u8]) -> Partial<()> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(Some(()))
            }
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// An element ID (with its marker bits, as IDs are written).
    fn id(&mut self) -> Partial<u32> {
        let Some(first) = self.byte()? else { return Ok(None) };
        let len = first.leading_zeros() + 1;
        if len > 4 {
            return Err(invalid("bad element ID"));
        }
        let mut id = u32::from(first);
        for _ in 1..len {
            let Some(b) = self.byte()? else { return Ok(None) };
            id = (id << 8) | u32::from(b);
        }
        Ok(Some(id))
    }

    /// An element size; `Some(None)` is the "unknown" size.
    fn size(&mut self) -> Partial<Option<u64>> {
        let Some(first) = self.byte()? else { return Ok(None) };
        let len = first.leading_zeros() + 1;
        if len > 8 {
            return Err(invalid("bad element size"));
        }
        let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
        let mut v = u64::from(first & mask);
        let mut all_ones = first & mask == mask;
        for _ in 1..len {
            let Some(b) = self.byte()? else { return Ok(None) };
            all_ones &= b == 0xFF;
            v = (v << 8) | u64::from(b);
        }
        Ok(Some((!all_ones).then_some(v)))
    }

    fn bytes(&mut self, n: u64) -> Partial<Vec<u8>> {
        if n > MAX_ELEMENT {
            return Err(invalid("an element is too large"));
        }
        let mut b = vec![0u8; n as usize];
        Ok(self.exact(&mut b)?.map(|()| b))
    }

    fn skip(&mut self, n: u64) -> Partial<()> {
        let got = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        self.pos += got;
        Ok((got == n).then_some(()))
    }
}

fn invalid(what: &str) -> ArchiveError {
    ArchiveError::Invalid(format!("not a finishable WebM/Matroska recording: {what}"))
}

fn known(size: Option<u64>, what: &str) -> Result<u64> {
    size.ok_or_else(|| invalid(&format!("{what} has an unknown size")))
}

fn scan<R: Read>(src: &mut Src<R>) -> Result<Index> {
    let mut ix = Index { timecode_scale: 1_000_000, ..Index::default() };
    if src.id()? != Some(EBML) {
        return Err(invalid("no EBML header"));
    }
    let size = known(src.size()?.ok_or_else(|| invalid("torn EBML header"))?, "the EBML header")?;
    let payload = src.bytes(size)?.ok_or_else(|| invalid("torn EBML header"))?;
    ix.ebml_header = element(EBML, &payload);
    if src.id()? != Some(SEGMENT) {
        return Err(invalid("no Segment"));
    }
    let segment_size = src.size()?.ok_or_else(|| invalid("torn Segment"))?;
    let segment_end = segment_size.map(|s| src.pos + s);
    let mut tracks = Tracks::default();
    let mut pending: Option<u32> = None;
    loop {
        if segment_end.is_some_and(|end| src.pos >= end) {
            break;
        }
        let id = match pending.take() {
            Some(id) => id,
            None => match src.id()? {
                Some(id) => id,
                None => break,
            },
        };
        let Some(size) = src.size()? else { break };
        match id {
            CLUSTER => {
                let (span, next) = scan_cluster(src, size, &tracks, &mut ix)?;
                if span.payload_len > 0 {
                    ix.clusters.push(span);
                }
                match next {
                    ClusterEnd::Next(id) => pending = Some(id),
                    ClusterEnd::Done => {}
                    ClusterEnd::Eof => break,
                }
            }
            INFO | TRACKS | TAGS | CHAPTERS | ATTACHMENTS => {
                let Some(payload) = src.bytes(known(size, "a header element")?)? else { break };
                match id {
                    INFO => {
                        for (child, v) in children(&payload)? {
                            if child == TIMECODE_SCALE {
                                ix.timecode_scale = uint(v).max(1);
                            }
                            if child != DURATION {
                                ix.info.extend(element(child, v));
                            }
                        }
                    }
                    TRACKS => {
                        tracks = Tracks::parse(&payload)?;
                        ix.cue_track = tracks.cue_track();
                        ix.tracks = Some(payload);
                    }
                    // After the first Cluster these would need a SeekHead entry of their own;
                    // live recordings never write them there.
                    _ if ix.clusters.is_empty() => ix.extras.push((id, payload)),
                    _ => {}
                }
            }
            // Rebuilt (SeekHead, Cues) or meaningless (Void, CRC-32) in the finished file.
            _ => {
                let Some(size) = size else { return Err(invalid("an element of unknown size")) };
                if src.skip(size)?.is_none() {
                    break;
                }
            }
        }
    }
    if ix.tracks.is_none() {
        return Err(invalid("no Tracks"));
    }
    Ok(ix)
}

enum ClusterEnd {
    /// A level-1 element with this ID follows (an unknown-size Cluster ended there).
    Next(u32),
    /// The Cluster's known size was read.
    Done,
    /// The data ended (possibly inside a block, which is left out).
    Eof,
}

fn scan_cluster<R: Read>(
    src: &mut Src<R>,
    size: Option<u64>,
    tracks: &Tracks,
    ix: &mut Index,
) -> Result<(ClusterSpan, ClusterEnd)> {
    let payload_from = src.pos;
    let end = size.map(|s| payload_from + s);
    let mut span = ClusterSpan { payload_from, payload_len: 0, cue: None };
    let mut timecode = 0u64;
    let how = loop {
        if end.is_some_and(|e| src.pos >= e) {
            break ClusterEnd::Done;
        }
        let Some(id) = src.id()? else { break ClusterEnd::Eof };
        if size.is_none() && TOP_LEVEL.contains(&id) {
            break ClusterEnd::Next(id);
        }
        let Some(child_size) = src.size()? else { break ClusterEnd::Eof };
        let child_size = known(child_size, "a Cluster's child")?;
        let read = match id {
            CLUSTER_TIMECODE => src.bytes(child_size)?.map(|v| timecode = uint(&v)),
            SIMPLE_BLOCK => src.bytes(child_size)?.map(|b| block(&b, None, None, timecode, tracks, ix, &mut span)),
            BLOCK_GROUP => src
                .bytes(child_size)?
                .map(|g| -> Result<()> {
                    let (mut data, mut duration, mut key) = (None, None, true);
                    // A Block in a group is a keyframe unless it refers to another.
                    for (id, v) in children(&g)? {
                        match id {
                            BLOCK => data = Some(v),
                            BLOCK_DURATION => duration = Some(uint(v)),
                            REFERENCE_BLOCK => key = false,
                            _ => {}
                        }
                    }
                    if let Some(b) = data {
                        block(b, duration, Some(key), timecode, tracks, ix, &mut span);
                    }
                    Ok(())
                })
                .transpose()?,
            _ => src.skip(child_size)?,
        };
        if read.is_none() {
            break ClusterEnd::Eof;
        }
        span.payload_len = src.pos - payload_from;
    };
    Ok((span, how))
}

/// Notes one block (`group_key`: a Block in a BlockGroup and whether it is a keyframe; `None`
/// for a SimpleBlock, whose flags say it): the end of the recording and the Cluster's cue point.
fn block(
    b: &[u8],
    duration: Option<u64>,
    group_key: Option<bool>,
    cluster_timecode: u64,
    tracks: &Tracks,
    ix: &mut Index,
    span: &mut ClusterSpan,
) {
    let Some((track, at)) = vint_value(b) else { return };
    let Some(head) = b.get(at..at + 3) else { return };
    let relative = i64::from(i16::from_be_bytes([head[0], head[1]]));
    let flags = head[2];
    let Some(ticks) = cluster_timecode.checked_add_signed(relative) else { return };
    let key = group_key.unwrap_or(flags & 0x80 != 0);
    let laced = flags & 0x06 != 0;
    let scale = ix.timecode_scale;
    let length_ns = match duration {
        Some(d) => d.saturating_mul(scale),
        None if !laced && tracks.is_opus(track) => opus_packet_duration_ns(&b[at + 3..]),
        None => 0,
    };
    ix.end_ns = ix.end_ns.max(ticks.saturating_mul(scale).saturating_add(length_ns));
    if key && Some(track) == ix.cue_track && span.cue.is_none() {
        span.cue = Some(ticks);
    }
}

impl Index {
    fn duration_ms(&self) -> u64 {
        self.end_ns.div_ceil(1_000_000)
    }

    /// The finished file as pieces, and its length.
    fn plan(&self) -> (VecDeque<Piece>, u64) {
        let duration = self.end_ns as f64 / self.timecode_scale as f64;
        let info = element(INFO, &[self.info.clone(), element(DURATION, &duration.to_be_bytes())].concat());
        let tracks = element(TRACKS, self.tracks.as_deref().unwrap_or_default());
        let extras: Vec<(u32, Vec<u8>)> = self.extras.iter().map(|(id, p)| (*id, element(*id, p))).collect();
        let cluster_header = 4 + 8;
        let clusters_len: u64 = self.clusters.iter().map(|c| cluster_header + c.payload_len).sum();
        let has_cues = self.clusters.iter().any(|c| c.cue.is_some());
        // The SeekHead's positions are fixed-width, so its length does not depend on them.
        let mut entries: Vec<(u32, u64)> = vec![(INFO, 0), (TRACKS, 0)];
        entries.extend(extras.iter().map(|(id, _)| (*id, 0)));
        if has_cues {
            entries.push((CUES, 0));
        }
        let seek_head_len = seek_head(&entries).len() as u64;
        let mut at = seek_head_len;
        let mut positions = vec![at];
        at += info.len() as u64;
        positions.push(at);
        at += tracks.len() as u64;
        for (_, e) in &extras {
            positions.push(at);
            at += e.len() as u64;
        }
        let mut cues = Vec::new();
        let mut cluster_at = at;
        for c in &self.clusters {
            if let Some(time) = c.cue {
                let track = self.cue_track.unwrap_or(1);
                let position = element(
                    CUE_TRACK_POSITIONS,
                    &[uint_element(CUE_TRACK, track), uint_element(CUE_CLUSTER_POSITION, cluster_at)].concat(),
                );
                cues.extend(element(CUE_POINT, &[uint_element(CUE_TIME, time), position].concat()));
            }
            cluster_at += cluster_header + c.payload_len;
        }
        if has_cues {
            positions.push(cluster_at);
        }
        for (e, p) in entries.iter_mut().zip(positions) {
            e.1 = p;
        }
        let cues = if has_cues { element(CUES, &cues) } else { Vec::new() };
        let segment_len = cluster_at + cues.len() as u64;
        let mut head = self.ebml_header.clone();
        head.extend(id_bytes(SEGMENT));
        head.extend(size8(segment_len));
        head.extend(seek_head(&entries));
        head.extend(info);
        head.extend(tracks);
        for (_, e) in extras {
            head.extend(e);
        }
        let len = head.len() as u64 + clusters_len + cues.len() as u64;
        let mut pieces = VecDeque::from([Piece::Bytes(head, 0)]);
        for c in &self.clusters {
            pieces.push_back(Piece::Bytes([id_bytes(CLUSTER), size8(c.payload_len).to_vec()].concat(), 0));
            pieces.push_back(Piece::Copy { from: c.payload_from, len: c.payload_len });
        }
        if !cues.is_empty() {
            pieces.push_back(Piece::Bytes(cues, 0));
        }
        (pieces, len)
    }
}

fn seek_head(entries: &[(u32, u64)]) -> Vec<u8> {
    let mut seeks = Vec::new();
    for (id, position) in entries {
        let fixed = element(SEEK_POSITION, &position.to_be_bytes());
        seeks.extend(element(SEEK, &[element(SEEK_ID, &id_bytes(*id)), fixed].concat()));
    }
    element(SEEK_HEAD, &seeks)
}

/// The children of an element's payload: (ID, payload). Void and CRC-32 are skipped.
fn children(payload: &[u8]) -> Result<Vec<(u32, &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let first = payload[at];
        let id_len = first.leading_zeros() as usize + 1;
        let id = payload
            .get(at..at + id_len)
            .filter(|_| id_len <= 4)
            .ok_or_else(|| invalid("bad child ID"))?
            .iter()
            .fold(0u32, |v, b| (v << 8) | u32::from(*b));
        at += id_len;
        let (size, n) = vint_value(&payload[at..]).ok_or_else(|| invalid("bad child size"))?;
        at += n;
        let end = usize::try_from(size).ok().and_then(|s| at.checked_add(s)).filter(|e| *e <= payload.len());
        let end = end.ok_or_else(|| invalid("a child overruns its parent"))?;
        if id != VOID && id != CRC32 {
            out.push((id, &payload[at..end]));
        }
        at = end;
    }
    Ok(out)
}

/// An EBML variable-size integer's value and length.
fn vint_value(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return None;
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let v = b[1..len].iter().fold(u64::from(first & mask), |v, x| (v << 8) | u64::from(*x));
    Some((v, len))
}

fn uint(v: &[u8]) -> u64 {
    v.iter().take(8).fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|x| *x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

/// A size in the 8-byte form.
fn size8(len: u64) -> [u8; 8] {
    let mut b = len.to_be_bytes();
    b[0] = 0x01;
    b
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut e = id_bytes(id);
    let len = payload.len() as u64;
    // The shortest size form (all-ones values are reserved for "unknown").
    let width = (1..=8u32).find(|w| len < (1u64 << (7 * w)) - 1).unwrap_or(8);
    let marked = len | (1u64 << (7 * width));
    e.extend_from_slice(&marked.to_be_bytes()[8 - width as usize..]);
    e.extend_from_slice(payload);
    e
}

fn uint_element(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().position(|x| *x != 0).unwrap_or(7);
    element(id, &b[skip..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_ids_and_children_round_trip() {
        assert_eq!(element(TRACK_NUMBER, &[1]), [0xD7, 0x81, 0x01]);
        assert_eq!(element(0xA3, &[0; 127])[..3], [0xA3, 0x40, 0x7F], "0xFF alone would mean unknown");
        assert_eq!(size8(0x1234), [0x01, 0, 0, 0, 0, 0, 0x12, 0x34]);
        assert_eq!(vint_value(&size8(0x1234)), Some((0x1234, 8)));
        assert_eq!(vint_value(&[0x81]), Some((1, 1)));
        let payload = [uint_element(TRACK_NUMBER, 2), element(VOID, &[0; 3]), element(CODEC_ID, b"A_OPUS")].concat();
        let got = children(&payload).unwrap();
        assert_eq!(got, [(TRACK_NUMBER, &[2u8][..]), (CODEC_ID, &b"A_OPUS"[..])]);
        assert!(children(&[0xD7, 0x85, 1]).is_err(), "a child longer than its parent");
    }

    /// A hand-made live file: unknown-size Segment and Clusters, no Duration, a torn block
    /// at the end.
    #[test]
    fn a_live_file_gets_sizes_duration_seek_head_and_cues() {
        let track = element(
            TRACK_ENTRY,
            &[uint_element(TRACK_NUMBER, 1), uint_element(TRACK_TYPE, 1), element(CODEC_ID, b"V_VP8")].concat(),
        );
        let mut live = element(EBML, &element(0x4282, b"webm"));
        live.extend(id_bytes(SEGMENT));
        live.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        live.extend(element(INFO, &uint_element(TIMECODE_SCALE, 1_000_000)));
        live.extend(element(TRACKS, &track));
        let simple = |rel: i16, key: bool, data: &[u8]| {
            element(SIMPLE_BLOCK, &[&[0x81][..], &rel.to_be_bytes(), &[if key { 0x80 } else { 0 }], data].concat())
        };
        for (tc, frames) in [(0u64, [0i16, 500]), (1000, [0, 900])] {
            live.extend(id_bytes(CLUSTER));
            live.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
            live.extend(uint_element(CLUSTER_TIMECODE, tc));
            live.extend(simple(frames[0], true, b"key"));
            live.extend(simple(frames[1], false, b"delta"));
        }
        let torn = simple(950, false, b"torn frame");
        live.extend(&torn[..torn.len() - 3]);
        let open = || Ok(std::io::Cursor::new(live.clone()));
        let mut done = finish_live(open).unwrap();
        assert_eq!(done.duration_ms(), 1900);
        let mut out = Vec::new();
        done.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, done.len());
        // The result is itself finishable, and indexes the same way.
        let again = scan(&mut Src { r: BufReader::new(std::io::Cursor::new(out.clone())), pos: 0 }).unwrap();
        assert_eq!(again.clusters.len(), 2);
        assert_eq!(again.clusters.iter().map(|c| c.cue).collect::<Vec<_>>(), [Some(0), Some(1000)]);
        assert_eq!(again.duration_ms(), 1900);
        // Known sizes everywhere: the Segment's size is what follows its header.
        let at = out.windows(4).position(|w| w == id_bytes(SEGMENT)).unwrap() + 4;
        let (segment_len, n) = vint_value(&out[at..]).unwrap();
        assert_eq!(segment_len as usize, out.len() - at - n);
        assert!(out.windows(4).any(|w| w == id_bytes(CUES)), "Cues written");
        assert!(!out.windows(3).any(|w| w == b"tor"), "the torn block is left out");
    }
}
