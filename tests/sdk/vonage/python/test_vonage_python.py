"""The official Vonage Video Python SDK (vonage-video, on its own and as `Vonage(...).video`
of the vonage package), unmodified, against `conclave serve --tls-self-signed`: the SDK
authenticates with a Conclave application's ID and generated private key (RS256 JWTs) and
builds https://{video_host} URLs. Sessions in every mode; client tokens from
generate_client_token joined by `conclave client` bots over wss; streams, class lists,
signals, mutes and force disconnect; archives started, re-laid-out, listed, stopped,
uploaded to moto and deleted; another application refused; unserved features answer 501.
"""
import base64
import time

import pytest
import requests
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client import HttpClient
from vonage_http_client.errors import HttpRequestError
from vonage_video import Video
from vonage_video.models import (
    ArchiveMode,
    ComposedLayout,
    CreateArchiveRequest,
    LayoutType,
    ListArchivesFilter,
    MediaMode,
    OutputMode,
    SessionOptions,
    SignalData,
    StreamLayout,
    StreamLayoutOptions,
    TokenOptions,
    TokenRole,
)

KINDS = ["vonage_video.Video", "vonage.Vonage"]


def client(server, app, kind):
    auth = Auth(application_id=app["application_id"], private_key=app["private_key"])
    options = HttpClientOptions(video_host=server.host)
    if kind == "vonage.Vonage":
        return Vonage(auth, options).video
    return Video(HttpClient(auth, options))


def token(video, session_id, **kwargs):
    t = video.generate_client_token(TokenOptions(session_id=session_id, **kwargs))
    return t.decode() if isinstance(t, bytes) else t


def status_of(fn):
    try:
        fn()
        return 200
    except HttpRequestError as e:
        return e.response.status_code


@pytest.mark.parametrize("kind", KINDS)
def test_sessions_in_every_mode_and_tokens_that_join(server, bots, kind):
    video = client(server, server.apps[0], kind)
    app_id = server.apps[0]["application_id"]
    for options, media, archive in [
        (None, "routed", "manual"),
        (SessionOptions(media_mode=MediaMode.RELAYED), "relayed", "manual"),
        (SessionOptions(media_mode=MediaMode.ROUTED, archive_mode=ArchiveMode.ALWAYS), "routed", "always"),
        (SessionOptions(media_mode=MediaMode.ROUTED, location="10.1.2.3"), "routed", "manual"),
    ]:
        s = video.create_session(options) if options else video.create_session()
        fields = base64.urlsafe_b64decode(s.session_id[2:] + "=" * (-len(s.session_id[2:]) % 4)).decode().split("~")
        assert fields[1] == app_id
        # Conclave's session info (an extension) with the SDK's own credential.
        info = requests.get(
            f"{server.url}/v2/project/{app_id}/session/{s.session_id}",
            headers={"Authorization": video.http_client.auth.create_jwt_auth_string()},
            timeout=10,
        ).json()
        assert (info["mediaMode"], info["archiveMode"]) == (media, archive)
        alice = bots(server, s.session_id, token(video, s.session_id, role=TokenRole.MODERATOR,
                                                 connection_data="name=alice", initial_layout_class_list=["full"]))
        bob = bots(server, s.session_id, token(video, s.session_id))
        created = alice.wait_for(lambda m: m["type"] == "connectionCreated")
        assert created["connection"]["connectionId"] == bob.connection_id
        alice.stop()
        bob.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_streams_signals_mutes_and_force_disconnect(server, bots, kind):
    video = client(server, server.apps[0], kind)
    session = video.create_session(SessionOptions(media_mode=MediaMode.ROUTED)).session_id
    alice = bots(server, session, token(video, session, role=TokenRole.MODERATOR, connection_data="alice"), publish="alice-cam")
    bob = bots(server, session, token(video, session, connection_data="bob"), publish="bob-cam")
    carol = bots(server, session, token(video, session, role=TokenRole.SUBSCRIBER, connection_data="carol"))

    streams = video.list_streams(session)
    assert sorted(s.id for s in streams) == sorted([alice.stream_id, bob.stream_id])
    one = video.get_stream(session, alice.stream_id)
    assert (one.id, one.name, one.video_type) == (alice.stream_id, "alice-cam", "camera")

    changed = video.change_stream_layout(session, StreamLayoutOptions(items=[StreamLayout(id=bob.stream_id, layout_class_list=["focus"])]))
    assert [(s.id, s.layout_class_list) for s in changed] == [(bob.stream_id, ["focus"])]
    carol.wait_for(lambda m: m["type"] == "streamPropertyChanged" and m["streamId"] == bob.stream_id)

    video.send_signal(session, SignalData(type="chat", data="to everyone"))
    for b in (alice, bob, carol):
        b.wait_for(lambda m: m["type"] == "signal" and m["data"] == "to everyone")
    video.send_signal(session, SignalData(type="chat", data="carol only"), carol.connection_id)
    carol.wait_for(lambda m: m["type"] == "signal" and m["data"] == "carol only")

    video.mute_stream(session, alice.stream_id)
    alice.wait_for(lambda m: m["type"] == "muteForced" and m["streamId"] == alice.stream_id)
    video.mute_all_streams(session, excluded_stream_ids=[alice.stream_id])
    bob.wait_for(lambda m: m["type"] == "muteForced" and m["streamId"] == bob.stream_id)
    video.disable_mute_all_streams(session)
    carol.wait_for(lambda m: m["type"] == "muteAllChanged" and m["active"] is False)

    video.disconnect_client(session, bob.connection_id)
    assert bob.wait_for(lambda m: m["type"] == "sessionDisconnected")["reason"] == "forceDisconnected"
    carol.wait_for(lambda m: m["type"] == "connectionDestroyed" and m["connectionId"] == bob.connection_id)


@pytest.mark.parametrize("kind", KINDS)
def test_another_application_is_refused(server, bots, kind):
    video = client(server, server.apps[0], kind)
    other = client(server, server.apps[1], kind)
    session = video.create_session().session_id
    assert status_of(lambda: other.list_streams(session)) == 404
    with pytest.raises(AssertionError):
        bots(server, session, token(other, session))
    stranger = client(server, {"application_id": server.apps[0]["application_id"], "private_key": server.apps[1]["private_key"]}, kind)
    assert status_of(lambda: stranger.list_streams(session)) == 403
    with pytest.raises(AssertionError):
        bots(server, session, token(stranger, session))


@pytest.mark.parametrize("kind", KINDS)
def test_unserved_features_answer_501(server, kind):
    video = client(server, server.apps[0], kind)
    app_id = server.apps[0]["application_id"]
    session = video.create_session().session_id
    auth = {"Authorization": video.http_client.auth.create_jwt_auth_string()}
    assert status_of(lambda: video.list_experience_composers()) == 501
    for path in ["dial", "captions", "render", f"session/{session}/play-dtmf"]:
        r = requests.post(f"{server.url}/v2/project/{app_id}/{path}", json={}, headers=auth, timeout=10)
        assert r.status_code == 501, path
        assert "does not serve" in r.json()["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_archives_uploaded_to_s3(server, moto, bots, kind):
    video = client(server, server.apps[0], kind)
    app_id = server.apps[0]["application_id"]
    r = requests.put(
        f"{server.url}/v2/project/{app_id}/archive/storage",
        json={"type": "s3", "config": {"bucket": "archives", "endpoint": moto.endpoint, "region": "us-east-1",
                                        "accessKey": "testing", "secretKey": "testing"}, "fallback": "conclave"},
        headers={"Authorization": video.http_client.auth.create_jwt_auth_string()},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    session = video.create_session(SessionOptions(media_mode=MediaMode.ROUTED)).session_id
    cam = bots(server, session, token(video, session, connection_data="cam"), publish="cam", real_media=True)
    started = video.start_archive(CreateArchiveRequest(session_id=session, name=f"py {kind}", output_mode=OutputMode.COMPOSED,
                                                       layout=ComposedLayout(type=LayoutType.BEST_FIT)))
    assert (started.status, started.session_id, started.application_id) == ("started", session, app_id)
    time.sleep(1.5)
    relaid = video.change_archive_layout(started.id, ComposedLayout(type=LayoutType.HORIZONTAL_PRESENTATION))
    assert relaid.id == started.id
    archives, count, _ = video.list_archives(ListArchivesFilter(session_id=session))
    assert count == 1 and archives[0].id == started.id
    assert video.get_archive(started.id).status == "started"
    time.sleep(1.5)
    assert video.stop_archive(started.id).status == "stopped"
    cam.stop()
    deadline = time.monotonic() + 90
    while True:
        a = video.get_archive(started.id)
        if a.status not in ("stopped", "available") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert a.status == "uploaded", (a.status, a.reason)
    assert a.size > 0 and a.duration >= 1
    assert any(started.id in k for k in moto.keys())
    video.delete_archive(started.id)
    assert video.get_archive(started.id).status == "deleted"
    assert video.list_archives(ListArchivesFilter(session_id=session))[1] == 0
