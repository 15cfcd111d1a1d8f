//! What a composed archive looks like over time, by OpenTok's rules: the layout type in effect,
//! which stream is its focus (the `focus` class, or a screen share under `bestFit` with
//! `screenshareType`), and where that changes (a layout set while recording, class changes,
//! a screen share starting or ending). Pure decisions over the archive record and the finished
//! streams; must not draw (that is `conclave_archive::compose`) or touch files.

use super::recording::{FinishedStream, StreamTags};
use conclave_archive::compose::{Epoch, Layout};
use conclave_store::ArchiveRecord;

/// The composed layout over time: an epoch from 0, and a new one wherever the layout, a
/// stream's classes or the presence of a screen share change what is drawn (consecutive
/// equal epochs merged).
pub(crate) fn epochs_of(rec: &ArchiveRecord, streams: &[FinishedStream]) -> Vec<Epoch> {
    let mut times = vec![0];
    times.extend(rec.layout_changes.iter().map(|(at, _)| *at));
    for s in streams {
        times.extend(s.tag_changes.iter().map(|(at, _)| *at));
        if s.tags.screen || s.tag_changes.iter().any(|(_, t)| t.screen) {
            times.extend([s.offset_ms, s.offset_ms + s.duration_ms]);
        }
    }
    times.sort_unstable();
    times.dedup();
    let mut epochs: Vec<Epoch> = Vec::new();
    for at in times {
        let layout = match rec.layout_changes.iter().take_while(|(t, _)| *t <= at).last() {
            Some((_, l)) => l.clone(),
            None => rec.layout.clone(),
        };
        let views: Vec<StreamView> = streams
            .iter()
            .map(|s| StreamView { tags: s.tags_at(at), has_video: s.has_video, present: s.present_at(at) })
            .collect();
        let (layout, focus) = layout_of(layout.as_ref(), &views);
        // A grid has no focus: a class change alone does not change it.
        let focus = focus.filter(|_| layout != Layout::BestFit);
        if epochs.last().map(|e| (e.layout, e.focus)) != Some((layout, focus)) {
            epochs.push(Epoch { from_ms: at, layout, focus });
        }
    }
    epochs
}

/// What the layout rules look at in a stream at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamView {
    pub tags: StreamTags,
    pub has_video: bool,
    /// Being recorded at that moment (a screen share counts only while it is there).
    pub present: bool,
}

/// The composed layout of an archive (OpenTok's rules) and which stream is its focus: the
/// layout's type, with the first stream that has the `focus` class as the focus; `bestFit`
/// with a `screenshareType` switches to that type, the screen share as the focus, while a
/// screen share is among the streams. `custom` stylesheets are rendered as `bestFit`.
pub(crate) fn layout_of(
    layout: Option<&conclave_core::archive::ArchiveLayout>,
    streams: &[StreamView],
) -> (Layout, Option<usize>) {
    let by_name = |name: &str| match name {
        "pip" => Layout::Pip,
        "verticalPresentation" => Layout::VerticalPresentation,
        "horizontalPresentation" => Layout::HorizontalPresentation,
        _ => Layout::BestFit,
    };
    let focused = streams.iter().position(|s| s.tags.focus);
    let Some(layout) = layout else { return (Layout::BestFit, focused) };
    if layout.kind == "bestFit"
        && let Some(share) = layout.screenshare_type.as_deref()
        && let Some(screen) = streams.iter().position(|s| s.tags.screen && s.has_video && s.present)
    {
        return (by_name(share), Some(screen));
    }
    (by_name(&layout.kind), focused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_core::archive::ArchiveLayout;
    use std::path::PathBuf;

    fn view(focus: bool, screen: bool) -> StreamView {
        StreamView { tags: StreamTags { focus, screen }, has_video: true, present: true }
    }

    fn layout(kind: &str, screenshare: Option<&str>) -> ArchiveLayout {
        ArchiveLayout { kind: kind.into(), stylesheet: None, screenshare_type: screenshare.map(Into::into) }
    }

    #[test]
    fn layouts_follow_opentoks_rules() {
        let plain = [view(false, false), view(true, false), view(false, true)];
        assert_eq!(layout_of(None, &plain), (Layout::BestFit, Some(1)));
        assert_eq!(layout_of(Some(&layout("pip", None)), &plain), (Layout::Pip, Some(1)));
        assert_eq!(
            layout_of(Some(&layout("verticalPresentation", None)), &plain[..1]),
            (Layout::VerticalPresentation, None)
        );
        assert_eq!(
            layout_of(Some(&layout("horizontalPresentation", None)), &plain),
            (Layout::HorizontalPresentation, Some(1))
        );
        // bestFit + screenshareType: the screen share becomes the focus of that layout...
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &plain), (Layout::Pip, Some(2)));
        // ...only while there is one.
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &plain[..2]), (Layout::BestFit, Some(1)));
        let gone = [view(false, false), StreamView { present: false, ..view(false, true) }];
        assert_eq!(layout_of(Some(&layout("bestFit", Some("pip"))), &gone), (Layout::BestFit, None));
        // Custom stylesheets are rendered as a grid.
        assert_eq!(layout_of(Some(&layout("custom", None)), &plain).0, Layout::BestFit);
    }

    fn stream(
        id: &str,
        offset_ms: u64,
        duration_ms: u64,
        tags: StreamTags,
        tag_changes: Vec<(u64, StreamTags)>,
    ) -> FinishedStream {
        FinishedStream {
            stream_id: id.into(),
            path: PathBuf::new(),
            offset_ms,
            duration_ms,
            has_audio: true,
            has_video: true,
            encrypted: false,
            tags,
            tag_changes,
        }
    }

    #[test]
    fn the_layout_changes_when_the_layout_the_classes_or_a_screen_share_do() {
        let focus = StreamTags { focus: true, screen: false };
        let none = StreamTags::default();
        let screen = StreamTags { focus: false, screen: true };
        let mut rec: ArchiveRecord = serde_json::from_value(serde_json::json!({
            "id": "a", "api_key": "1", "session_id": "s", "status": "started", "reason": "", "created_at_ms": 0, "updated_at_ms": 0,
            "expires_at_ms": null, "name": null, "output_mode": "composed", "stream_mode": "auto", "has_audio": true, "has_video": true,
            "resolution": null, "layout": {"type": "bestFit", "screenshareType": "verticalPresentation"}, "multi_archive_tag": null,
            "max_bitrate": null, "quantization_parameter": null, "streams": [], "duration_s": 0, "size": 0, "sha256": "",
            "encrypted": false, "fallback_file": null, "uploaded_key": null, "node": null
        }))
        .unwrap();
        // a: focus from 2 s (no change in a grid); b: a screen share from 4 s to 6 s; the
        // layout becomes pip at 8 s, with a as its focus.
        let streams = [stream("a", 0, 10_000, none, vec![(2_000, focus)]), stream("b", 4_000, 2_000, screen, vec![])];
        rec.layout_changes = vec![(0, rec.layout.clone()), (8_000, Some(layout("pip", None)))];
        let e = epochs_of(&rec, &streams);
        let got: Vec<(u64, Layout, Option<usize>)> = e.iter().map(|e| (e.from_ms, e.layout, e.focus)).collect();
        assert_eq!(
            got,
            [
                (0, Layout::BestFit, None),
                (4_000, Layout::VerticalPresentation, Some(1)),
                (6_000, Layout::BestFit, None),
                (8_000, Layout::Pip, Some(0)),
            ]
        );
        // Nothing changes: one epoch.
        let rec1 = ArchiveRecord { layout_changes: Vec::new(), layout: None, ..rec };
        assert_eq!(epochs_of(&rec1, &streams[..1][..0]).len(), 1);
    }
}
