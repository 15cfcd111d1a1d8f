"""Session control with the official Python SDK 3.15 while real participants (`conclave client`
bots) are connected: each call's effect is observed by the bots (issue: signaling)."""
import time

from opentok import MediaModes, OpenTok, Roles


def setup(server, bots):
    p = server.projects[0]
    ot = OpenTok(p["api_key"], p["api_secret"], api_url=server.url)
    session = ot.create_session(media_mode=MediaModes.routed).session_id
    # A JWT (the Python default) and a T1 token from this SDK both connect.
    alice = bots(server, session, ot.generate_token(session, role=Roles.publisher, data="alice"), publish="alice-cam")
    bob = bots(server, session, ot.generate_token(session, role=Roles.publisher, data="bob", use_jwt=False), publish="bob-cam")
    carol = bots(server, session, ot.generate_token(session, role=Roles.subscriber, data="carol"), subscribe_all=True)
    return ot, session, alice, bob, carol


def test_streams_signals_and_class_lists(server, bots):
    ot, session, alice, bob, carol = setup(server, bots)
    carol.wait_for(lambda m: m["type"] == "subscriberCount" and m["streamId"] == bob.stream_id and m["count"] == 1)

    streams = ot.list_streams(session)
    assert sorted(s.id for s in streams.items) == sorted([alice.stream_id, bob.stream_id])
    s = ot.get_stream(session, alice.stream_id)
    assert (s.id, s.videoType, s.name) == (alice.stream_id, "camera", "alice-cam")

    ot.set_stream_class_lists(session, [{"id": alice.stream_id, "layoutClassList": ["focus"]}])
    carol.wait_for(lambda m: m["type"] == "streamPropertyChanged" and m["property"] == "layoutClassList" and m["newValue"] == ["focus"])
    assert ot.get_stream(session, alice.stream_id).layoutClassList == ["focus"]

    ot.signal(session, {"type": "notice", "data": "to everyone"})
    for b in (alice, bob, carol):
        b.wait_for(lambda m: m["type"] == "signal" and m["data"] == "to everyone" and "from" not in m)
    ot.signal(session, {"type": "dm", "data": "bob only"}, bob.connection_id)
    bob.wait_for(lambda m: m["type"] == "signal" and m["data"] == "bob only")


def test_force_mute_and_force_disconnect(server, bots):
    ot, session, alice, bob, carol = setup(server, bots)
    ot.mute_stream(session, alice.stream_id)
    alice.wait_for(lambda m: m["type"] == "muteForced" and m["streamId"] == alice.stream_id)
    carol.wait_for(lambda m: m["type"] == "streamPropertyChanged" and m["streamId"] == alice.stream_id and m["newValue"] is False)

    ot.mute_all(session, [alice.stream_id])
    bob.wait_for(lambda m: m["type"] == "muteForced" and m["streamId"] == bob.stream_id)
    carol.wait_for(lambda m: m["type"] == "muteAllChanged" and m["active"] is True)
    ot.disable_force_mute(session)
    carol.wait_for(lambda m: m["type"] == "muteAllChanged" and m["active"] is False)

    ot.force_disconnect(session, bob.connection_id)
    assert bob.wait_for(lambda m: m["type"] == "sessionDisconnected")["reason"] == "forceDisconnected"
    carol.wait_for(lambda m: m["type"] == "connectionDestroyed" and m["connectionId"] == bob.connection_id and m["reason"] == "forceDisconnected")
    assert all(s.id != bob.stream_id for s in ot.list_streams(session).items)
