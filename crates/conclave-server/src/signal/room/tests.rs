//! Deterministic tests of the room state machine: IDs from a counter, time as a number.

use super::*;
use conclave_core::signal::{SdpKind, VideoType};

struct Counter(u32);
impl IdSource for Counter {
    fn next_id(&mut self) -> String {
        self.0 += 1;
        format!("id{}", self.0)
    }
}

fn room(mode: MediaMode, max: Option<u32>) -> Room {
    Room::new(
        SessionMeta { session_id: "1_s".into(), api_key: "1".into(), media_mode: mode, max_participants: max },
        Box::new(Counter(0)),
    )
}

fn join(r: &mut Room, role: Role) -> ConnId {
    r.join(
        JoinRequest {
            role,
            data: format!("{role}"),
            layout_classes: vec!["focus".into()],
            token_fingerprint: [role as u8; 32],
            token_expires_at: 99,
            connection_id: None,
        },
        1,
    )
    .unwrap()
    .0
}

fn publish(r: &mut Room, from: &str) -> StreamId {
    let out = r
        .handle(
            from,
            ClientMessage::Publish {
                name: Some("cam".into()),
                has_audio: true,
                has_video: true,
                video_type: VideoType::Camera,
            },
            None,
            2,
        )
        .unwrap();
    match &out[0] {
        Output::Send { msg: ServerMessage::Published { stream, .. }, .. } => stream.stream_id.clone(),
        other => panic!("{other:?}"),
    }
}

/// Messages `conn` receives in `out`.
fn received(out: &[Output], conn: &str) -> Vec<ServerMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, msg } if to.iter().any(|t| t == conn) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn joins_and_leaves_are_announced_with_reasons() {
    let mut r = room(MediaMode::Routed, None);
    let a = join(&mut r, Role::Publisher);
    let (b, out) = r
        .join(
            JoinRequest {
                role: Role::Subscriber,
                data: "b".into(),
                layout_classes: vec![],
                token_fingerprint: [9; 32],
                token_expires_at: 9,
                connection_id: None,
            },
            5,
        )
        .unwrap();
    assert!(
        matches!(&received(&out, &a)[..], [ServerMessage::ConnectionCreated { connection }] if connection.connection_id == b && connection.data == "b")
    );
    assert!(received(&out, &b).is_empty(), "the joiner gets a snapshot instead");
    assert!(out.iter().any(|o| matches!(o, Output::Event(SessionEvent::ConnectionCreated(_)))));
    let sid = publish(&mut r, &a);
    let (others, streams) = r.snapshot_for(&b);
    assert_eq!(others.len(), 1);
    assert_eq!(streams[0].stream_id, sid);
    assert_eq!(streams[0].layout_class_list, ["focus"]);

    let out = r.handle(&a, ClientMessage::Disconnect, None, 9).unwrap();
    let got = received(&out, &b);
    assert!(got.contains(&ServerMessage::StreamDestroyed {
        stream_id: sid,
        reason: StreamDestroyedReason::ClientDisconnected
    }));
    assert!(got.contains(&ServerMessage::ConnectionDestroyed {
        connection_id: a.clone(),
        reason: DisconnectReason::ClientDisconnected
    }));
    assert!(!out.iter().any(|o| matches!(o, Output::Revoke { .. })), "a voluntary leave revokes nothing");
}

#[test]
fn roles_are_enforced_and_forbidden_actions_change_nothing() {
    let mut r = room(MediaMode::Routed, None);
    let sub = join(&mut r, Role::Subscriber);
    let pubonly = join(&mut r, Role::PublisherOnly);
    let publisher = join(&mut r, Role::Publisher);
    let publish_msg =
        || ClientMessage::Publish { name: None, has_audio: true, has_video: true, video_type: VideoType::Screen };
    assert_eq!(r.handle(&sub, publish_msg(), None, 1).unwrap_err().code, ErrorCode::Forbidden);
    assert!(r.streams().is_empty());
    let sig = |to: Option<String>| ClientMessage::Signal { to, signal_type: "chat".into(), data: "x".into() };
    assert_eq!(r.handle(&sub, sig(None), None, 1).unwrap_err().code, ErrorCode::Forbidden);
    assert_eq!(r.handle(&pubonly, sig(None), None, 1).unwrap_err().code, ErrorCode::Forbidden);
    let s = publish(&mut r, &publisher);
    assert_eq!(
        r.handle(&pubonly, ClientMessage::Subscribe { stream_id: s.clone() }, None, 1).unwrap_err().code,
        ErrorCode::Forbidden
    );
    assert_eq!(r.stream(&s).unwrap().subscriber_count, 0);
    for m in [
        ClientMessage::ForceDisconnect { connection_id: sub.clone() },
        ClientMessage::ForceUnpublish { stream_id: s.clone() },
        ClientMessage::ForceMute { stream_id: s.clone() },
        ClientMessage::ForceMuteAll { excluded_stream_ids: vec![] },
    ] {
        assert_eq!(r.handle(&publisher, m, None, 1).unwrap_err().code, ErrorCode::Forbidden);
    }
    assert_eq!(r.participant_count(), 3);
    assert!(r.stream(&s).unwrap().has_audio);
    // Only the publisher unpublishes its own stream.
    assert_eq!(
        r.handle(&sub, ClientMessage::Unpublish { stream_id: s.clone() }, None, 1).unwrap_err().code,
        ErrorCode::Forbidden
    );
    // A publisher signals everyone (itself included) or one connection.
    let out = r.handle(&publisher, sig(None), Some(7), 1).unwrap();
    assert_eq!(received(&out, &publisher)[0], ServerMessage::Ack { id: 7 });
    for c in [&sub, &pubonly, &publisher] {
        assert!(
            received(&out, c)
                .iter()
                .any(|m| matches!(m, ServerMessage::Signal { from: Some(f), .. } if f == &publisher))
        );
    }
    let out = r.handle(&publisher, sig(Some(sub.clone())), None, 1).unwrap();
    assert_eq!(received(&out, &sub).len(), 1);
    assert!(received(&out, &pubonly).is_empty());
    assert_eq!(r.handle(&publisher, sig(Some("nobody".into())), None, 1).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn subscriber_counts_follow_subscriptions() {
    let mut r = room(MediaMode::Routed, None);
    let p = join(&mut r, Role::Publisher);
    let s1 = join(&mut r, Role::Subscriber);
    let s2 = join(&mut r, Role::Moderator);
    let st = publish(&mut r, &p);
    let out = r.handle(&s1, ClientMessage::Subscribe { stream_id: st.clone() }, None, 1).unwrap();
    assert!(received(&out, &p).is_empty(), "a signaling subscription alone does not count");
    assert_eq!(r.stream(&st).unwrap().subscriber_count, 0);
    let out = r.confirm_subscription(&s1, &st);
    assert!(
        received(&out, &p).contains(&ServerMessage::SubscriberCount { stream_id: st.clone(), count: 1 }),
        "counted once its media is up"
    );
    r.handle(&s1, ClientMessage::Subscribe { stream_id: st.clone() }, None, 1).unwrap();
    assert!(r.confirm_subscription(&s1, &st).is_empty(), "confirming twice counts once");
    r.handle(&s2, ClientMessage::Subscribe { stream_id: st.clone() }, None, 1).unwrap();
    r.confirm_subscription(&s2, &st);
    assert_eq!(r.stream(&st).unwrap().subscriber_count, 2);
    let stranger = join(&mut r, Role::Subscriber);
    assert!(r.confirm_subscription(&stranger, &st).is_empty(), "no confirmation without a subscription");
    let out = r.handle(&s2, ClientMessage::Unsubscribe { stream_id: st.clone() }, None, 1).unwrap();
    assert!(received(&out, &s2).contains(&ServerMessage::SubscriberCount { stream_id: st.clone(), count: 1 }));
    let out = r.leave(&s1, DisconnectReason::NetworkDisconnected);
    assert!(received(&out, &p).contains(&ServerMessage::SubscriberCount { stream_id: st.clone(), count: 0 }));
    assert_eq!(
        r.handle(&p, ClientMessage::Subscribe { stream_id: st.clone() }, None, 1).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
}

#[test]
fn max_participants_is_exact_and_refusal_is_silent() {
    let mut r = room(MediaMode::Routed, Some(2));
    let a = join(&mut r, Role::Publisher);
    join(&mut r, Role::Publisher);
    let err = r
        .join(
            JoinRequest {
                role: Role::Publisher,
                data: String::new(),
                layout_classes: vec![],
                token_fingerprint: [0; 32],
                token_expires_at: 1,
                connection_id: None,
            },
            1,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionFull);
    assert_eq!(r.participant_count(), 2);
    r.leave(&a, DisconnectReason::ClientDisconnected);
    join(&mut r, Role::Publisher);
}

#[test]
fn force_disconnect_closes_revokes_and_removes_streams() {
    let mut r = room(MediaMode::Routed, None);
    let m = join(&mut r, Role::Moderator);
    let victim = join(&mut r, Role::Publisher);
    let st = publish(&mut r, &victim);
    let out = r.handle(&m, ClientMessage::ForceDisconnect { connection_id: victim.clone() }, Some(1), 3).unwrap();
    assert!(out.contains(&Output::Close { conn: victim.clone(), reason: DisconnectReason::ForceDisconnected }));
    assert!(out.contains(&Output::Revoke { fingerprint: [Role::Publisher as u8; 32], expires_at: 99 }));
    let got = received(&out, &m);
    assert!(
        got.contains(&ServerMessage::StreamDestroyed {
            stream_id: st,
            reason: StreamDestroyedReason::ForceDisconnected
        })
    );
    assert!(got.contains(&ServerMessage::ConnectionDestroyed {
        connection_id: victim.clone(),
        reason: DisconnectReason::ForceDisconnected
    }));
    assert_eq!(r.participant_count(), 1);
    assert_eq!(r.force_disconnect(&victim).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn force_mute_one_and_all_with_exclusions_and_later_streams() {
    let mut r = room(MediaMode::Routed, None);
    let m = join(&mut r, Role::Moderator);
    let p1 = join(&mut r, Role::Publisher);
    let p2 = join(&mut r, Role::Publisher);
    let s1 = publish(&mut r, &p1);
    let s2 = publish(&mut r, &p2);
    let out = r.handle(&m, ClientMessage::ForceMute { stream_id: s1.clone() }, None, 1).unwrap();
    assert!(received(&out, &p1).contains(&ServerMessage::MuteForced { stream_id: s1.clone() }));
    assert!(!r.stream(&s1).unwrap().has_audio && r.stream(&s2).unwrap().has_audio);
    r.handle(
        &p1,
        ClientMessage::SetStreamProperty { stream_id: s1.clone(), has_audio: Some(true), has_video: None },
        None,
        1,
    )
    .unwrap();
    let out = r.mute_all(true, vec![s2.clone()]);
    assert!(received(&out, &p1).contains(&ServerMessage::MuteForced { stream_id: s1.clone() }));
    assert!(received(&out, &p2).iter().all(|msg| !matches!(msg, ServerMessage::MuteForced { .. })));
    let s3 = publish(&mut r, &p1);
    assert!(!r.stream(&s3).unwrap().has_audio, "streams published while mute-all is on start muted");
    r.mute_all(false, vec![]);
    let s4 = publish(&mut r, &p2);
    assert!(r.stream(&s4).unwrap().has_audio);
}

#[test]
fn suspended_connections_keep_their_seat_then_leave_as_network_disconnected() {
    let mut r = room(MediaMode::Routed, None);
    let a = join(&mut r, Role::Publisher);
    let b = join(&mut r, Role::Publisher);
    r.suspend(&b, 100);
    assert!(r.expire_suspended(5_000, 10_000).is_empty());
    r.resume(&b).unwrap();
    r.suspend(&b, 6_000);
    let out = r.expire_suspended(16_000, 10_000);
    assert!(received(&out, &a).contains(&ServerMessage::ConnectionDestroyed {
        connection_id: b.clone(),
        reason: DisconnectReason::NetworkDisconnected
    }));
    assert_eq!(r.resume(&b).unwrap_err().code, ErrorCode::ResumeFailed);
}

#[test]
fn sdp_relay_only_between_publisher_and_subscriber_in_relayed_sessions() {
    let mut r = room(MediaMode::Relayed, None);
    let p = join(&mut r, Role::Publisher);
    let s = join(&mut r, Role::Subscriber);
    let stranger = join(&mut r, Role::Publisher);
    let st = publish(&mut r, &p);
    let offer =
        |to: &str| ClientMessage::Sdp { to: to.into(), stream_id: st.clone(), kind: SdpKind::Offer, sdp: "v=0".into() };
    assert_eq!(r.handle(&p, offer(&s), None, 1).unwrap_err().code, ErrorCode::Forbidden, "not subscribed yet");
    r.handle(&s, ClientMessage::Subscribe { stream_id: st.clone() }, None, 1).unwrap();
    let out = r.handle(&p, offer(&s), None, 1).unwrap();
    assert!(matches!(&received(&out, &s)[..], [ServerMessage::Sdp { from, kind: SdpKind::Offer, .. }] if from == &p));
    // The publisher's answer to the subscriber is the media subscription: it counts.
    let answer = ClientMessage::Sdp { to: s.clone(), stream_id: st.clone(), kind: SdpKind::Answer, sdp: "v=0".into() };
    let out = r.handle(&p, answer, None, 1).unwrap();
    assert!(received(&out, &s).contains(&ServerMessage::SubscriberCount { stream_id: st.clone(), count: 1 }));
    assert_eq!(r.handle(&stranger, offer(&s), None, 1).unwrap_err().code, ErrorCode::Forbidden);
    let mut routed = room(MediaMode::Routed, None);
    let p2 = join(&mut routed, Role::Publisher);
    let st2 = publish(&mut routed, &p2);
    let e = routed
        .handle(&p2, ClientMessage::Ice { to: p2.clone(), stream_id: st2, candidate: serde_json::json!({}) }, None, 1)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::RelayedOnly);
}

#[test]
fn ending_disconnects_everyone_and_admits_no_one() {
    let mut r = room(MediaMode::Routed, None);
    let a = join(&mut r, Role::Publisher);
    let b = join(&mut r, Role::Publisher);
    let out = r.end();
    assert!(out.contains(&Output::Close { conn: a, reason: DisconnectReason::SessionEnded }));
    assert!(out.contains(&Output::Close { conn: b, reason: DisconnectReason::SessionEnded }));
    assert!(r.is_empty());
    let err = r
        .join(
            JoinRequest {
                role: Role::Publisher,
                data: String::new(),
                layout_classes: vec![],
                token_fingerprint: [0; 32],
                token_expires_at: 1,
                connection_id: None,
            },
            1,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionEnded);
}

#[test]
fn class_lists_are_all_or_nothing() {
    let mut r = room(MediaMode::Routed, None);
    let p = join(&mut r, Role::Publisher);
    let st = publish(&mut r, &p);
    assert!(r.set_class_lists(vec![(st.clone(), vec!["a".into()]), ("missing".into(), vec![])]).is_err());
    assert_eq!(r.stream(&st).unwrap().layout_class_list, ["focus"]);
    let out = r.set_class_lists(vec![(st.clone(), vec!["full".into()])]).unwrap();
    assert_eq!(r.stream(&st).unwrap().layout_class_list, ["full"]);
    assert!(
        out.iter().any(|o| matches!(o, Output::Event(SessionEvent::StreamClassesChanged(s)) if s.stream_id == st && s.layout_class_list == ["full"])),
        "the change is an event for the archiver: {out:?}"
    );
}
