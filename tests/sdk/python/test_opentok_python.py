"""The official OpenTok Python SDK (3.15.0 and 3.10.0), unmodified, against Conclave:
sessions, tokens and REST authentication (issue: foundation)."""
import inspect
import time
from unittest import mock

import jwt
import opentok
import pytest
import requests
from opentok import ArchiveModes, MediaModes, OpenTok, Roles

VERSION = tuple(int(x) for x in opentok.__version__.split(".")[:2])
DATA = "name=Zoë & co: +!'()*"


def sdk(server, project=0, secret=None):
    p = server.projects[project]
    return OpenTok(p["api_key"], secret or p["api_secret"], api_url=server.url)


def rest_jwt(p, now=None):
    now = int(now or time.time())
    return jwt.encode({"iss": p["api_key"], "ist": "project", "iat": now, "exp": now + 180}, p["api_secret"], algorithm="HS256")


def session_info(server, session_id, project=0):
    p = server.projects[project]
    r = requests.get(f"{server.url}/v2/project/{p['api_key']}/session/{session_id}", headers={"X-OPENTOK-AUTH": rest_jwt(p)})
    return r


def test_session_variants_are_created_and_stored_as_requested(server):
    ot = sdk(server)
    cases = [
        ({}, "relayed", "manual", False, None),
        ({"media_mode": MediaModes.routed}, "routed", "manual", False, None),
        ({"media_mode": MediaModes.routed, "e2ee": True}, "routed", "manual", True, None),
        ({"media_mode": MediaModes.routed, "archive_mode": ArchiveModes.always}, "routed", "always", False, None),
        ({"media_mode": MediaModes.routed, "location": "12.34.56.78"}, "routed", "manual", False, "12.34.56.78"),
    ]
    if "archive_name" in inspect.signature(ot.create_session).parameters:
        cases.append(({"media_mode": MediaModes.routed, "archive_mode": ArchiveModes.always, "archive_name": "weekly", "archive_resolution": "1280x720"}, "routed", "always", False, None))
    for kwargs, media, archive, e2ee, location in cases:
        session = ot.create_session(**kwargs)
        assert session.session_id.startswith("1_")
        info = session_info(server, session.session_id)
        assert info.status_code == 200, info.text
        body = info.json()
        assert (body["mediaMode"], body["archiveMode"], body["e2ee"], body["location"]) == (media, archive, e2ee, location), kwargs


def test_e2ee_on_a_relayed_session_is_refused_with_a_message(server):
    # The SDK sends it; the server answers 400 with a JSON message, which the SDK surfaces as
    # an exception (it cannot parse a session from it).
    with pytest.raises(opentok.exceptions.OpenTokException):
        sdk(server).create_session(e2ee=True)
    p = server.projects[0]
    r = requests.post(f"{server.url}/session/create", data={"p2p.preference": "enabled", "e2ee": "true"}, headers={"X-OPENTOK-AUTH": rest_jwt(p), "Accept": "application/json"})
    assert r.status_code == 400
    assert "routed" in r.json()["message"]


def assert_auth_failure(call):
    """Python >= 3.11 wraps its own AuthError for a 403 into a RequestError with the same
    text; 3.10 raises AuthError. Either way the text says the credentials were refused."""
    with pytest.raises(opentok.exceptions.OpenTokException) as e:
        call()
    assert "invalid credentials" in str(e.value), repr(e.value)


def all_roles():
    roles = [Roles.subscriber, Roles.publisher, Roles.moderator]
    if hasattr(Roles, "publisher_only"):
        roles.append(Roles.publisher_only)
    return roles


def test_every_token_the_sdk_mints_verifies_for_its_session_only(server):
    ot = sdk(server)
    session = ot.create_session(media_mode=MediaModes.routed).session_id
    other = ot.create_session(media_mode=MediaModes.routed).session_id
    expire = int(time.time()) + 3600
    formats = [("jwt", {}), ("t1", {"use_jwt": False})] if VERSION >= (3, 10) else [("t1", {})]
    for role in all_roles():
        for fmt, extra in formats:
            token = ot.generate_token(session, role=role, expire_time=expire, data=DATA, initial_layout_class_list=["focus", "full"], **extra)
            assert token.startswith("T1==") == (fmt == "t1")
            ok, claims = server.verify(session, token)
            assert ok, claims
            assert claims["format"] == fmt
            assert claims["role"] == role.value
            assert claims["connection_data"] == DATA
            assert claims["initial_layout_classes"] == ["focus", "full"]
            assert claims["expires_at"] == expire
            ok, err = server.verify(other, token)
            assert not ok and err["code"] == "token_wrong_session"
    # Defaults: publisher, 24 h, no data.
    ok, claims = server.verify(session, ot.generate_token(session))
    assert ok and claims["role"] == "publisher" and claims["connection_data"] is None


def test_a_wrong_secret_is_refused_with_403(server):
    bad = sdk(server, secret="5e8ff9bf55ba3508199d22e984129be6f0e1c3d2")
    assert_auth_failure(bad.create_session)


def test_an_expired_rest_credential_is_refused_with_403(server):
    ot = sdk(server)
    # The SDK signs with the clock it reads: one hour in the past gives an expired JWT.
    past = time.time() - 3600
    with mock.patch("time.time", return_value=past):
        assert_auth_failure(ot.create_session)
    ot.create_session()  # and with the right clock it works


def test_a_participant_token_is_not_a_rest_credential(server):
    ot = sdk(server)
    session = ot.create_session(media_mode=MediaModes.routed).session_id
    tokens = [ot.generate_token(session, role=Roles.moderator, expire_time=int(time.time()) + 120)]
    if VERSION >= (3, 10):
        tokens.append(ot.generate_token(session, role=Roles.moderator, expire_time=int(time.time()) + 120, use_jwt=False))
    for token in tokens:
        r = requests.post(f"{server.url}/session/create", data={"p2p.preference": "disabled"}, headers={"X-OPENTOK-AUTH": token, "Accept": "application/json"})
        assert r.status_code == 403
        assert r.headers["Content-Type"] == "application/json"
        assert "client tokens cannot be used" in r.json()["message"]


def test_another_projects_session_is_not_found(server):
    theirs = sdk(server, project=1).create_session(media_mode=MediaModes.routed).session_id
    r = session_info(server, theirs, project=0)
    assert r.status_code == 404
    assert r.json()["message"] == "session not found"
