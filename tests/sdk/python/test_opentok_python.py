"""The official OpenTok Python SDK, unmodified, against a real Conclave server.

scripts/sdk-tests runs this same file once with opentok 3.15.0 and once with 3.10.0 (each in
its own virtualenv); the version differences that matter are read from `opentok.__version__`:

* 3.10 sends `Accept: */*` on session create and can only parse the XML answer;
  3.11+ asks for JSON and needs `Content-Type: application/json` exactly.
* both mint JWT client tokens by default and T1 tokens with `use_jwt=False`
  (older SDKs, < 3.10, only knew T1).
* `Roles.publisher_only` exists from 3.9 on.

Every assertion is on behaviour: HTTP statuses and bodies, what the SDK raised, and the claims
the server's own verifier (`conclave token verify`) reads back out of each token.
"""
import base64
import contextlib
import inspect
import secrets
import sys
import time
import types
from unittest import mock

import jwt  # PyJWT: a dependency of the opentok package
import opentok
import pytest
import requests
from opentok import ArchiveModes, MediaModes, OpenTok, Roles
from opentok.exceptions import AuthError, OpenTokException

VERSION = tuple(int(x) for x in opentok.__version__.split(".")[:2])

# Connection data with every character the two SDKs URL-encode differently inside T1 tokens
# (space, ! ' ( ) *), characters that must be encoded (= & : +) and a non-ASCII one.
DATA = "name=Zoé & co: a+b !'()*"
LAYOUT = ["focus", "full"]

ROLES = [Roles.subscriber, Roles.publisher, Roles.moderator]
if hasattr(Roles, "publisher_only"):  # Python SDK >= 3.9
    ROLES.append(Roles.publisher_only)

# Python SDK >= 3.10: JWT by default, T1 with use_jwt=False. Older SDKs: T1 only.
FORMATS = ["jwt", "t1"] if VERSION >= (3, 10) else ["t1"]
DEFAULT_FORMAT = FORMATS[0]


# --- helpers ---------------------------------------------------------------------------------

def sdk(server, project=0, secret=None):
    """An SDK client for one of the server's projects, pointed at the server with api_url."""
    p = server.projects[project]
    return OpenTok(p["api_key"], secret or p["api_secret"], api_url=server.url)


def rest_jwt(project, now=None):
    """A REST credential (X-OPENTOK-AUTH) with the claims the SDKs send."""
    now = int(time.time() if now is None else now)
    claims = {"iss": project["api_key"], "ist": "project", "iat": now, "exp": now + 180}
    return jwt.encode(claims, project["api_secret"], algorithm="HS256")


def get_session(server, session_id, project=0, path_project=None):
    """Conclave's extension: GET /v2/project/{apiKey}/session/{sessionId}. The credential is
    `project`'s; the API key in the path is `path_project`'s (default: the same)."""
    cred = server.projects[project]
    key = server.projects[project if path_project is None else path_project]["api_key"]
    return requests.get(f"{server.url}/v2/project/{key}/session/{session_id}",
                        headers={"X-OPENTOK-AUTH": rest_jwt(cred)}, timeout=10)


def assert_json_error(response, status):
    """The error contract: the expected status, a JSON body, and a `message` string in it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"], body
    return body


@contextlib.contextmanager
def http_exchanges():
    """Records each (request, response) that goes through `requests` (which the SDK uses), so
    a test can look at what the server actually answered to the SDK."""
    seen = []
    real_send = requests.Session.send

    def send(self, request, **kwargs):
        response = real_send(self, request, **kwargs)
        seen.append((request, response))
        return response

    with mock.patch.object(requests.Session, "send", send):
        yield seen


def assert_sdk_auth_error(excinfo):
    """The SDK's own auth error was raised for a 403. Both 3.10 and 3.15 raise AuthError inside
    create_session and re-wrap it into a RequestError with the same text, so look at both."""
    err = excinfo.value
    assert isinstance(err, AuthError) or isinstance(err.__context__, AuthError), repr(err)
    assert "invalid credentials" in str(err), str(err)


@contextlib.contextmanager
def sdk_clock_offset(seconds):
    """Shifts the clock that the SDK module reads (`time.time()` in opentok/opentok.py) only."""
    module = sys.modules["opentok.opentok"]
    real = time.time
    fake = types.SimpleNamespace(time=lambda: real() + seconds)
    with mock.patch.object(module, "time", fake):
        yield


# --- sessions --------------------------------------------------------------------------------

def always_archived():
    kwargs = {"media_mode": MediaModes.routed, "archive_mode": ArchiveModes.always}
    params = inspect.signature(OpenTok.create_session).parameters
    if "archive_name" in params:  # Python SDK >= 3.10 (checked, not assumed)
        kwargs["archive_name"] = "weekly-standup"
    if "archive_resolution" in params:
        kwargs["archive_resolution"] = "1280x720"
    return kwargs


SESSION_CASES = {
    # name: (create_session kwargs, what GET must report: mediaMode, archiveMode, e2ee, location)
    "relayed-default": ({}, ("relayed", "manual", False, None)),
    "routed": ({"media_mode": MediaModes.routed}, ("routed", "manual", False, None)),
    "routed-e2ee": ({"media_mode": MediaModes.routed, "e2ee": True}, ("routed", "manual", True, None)),
    "routed-archive-always": (always_archived(), ("routed", "always", False, None)),
    "routed-location": ({"media_mode": MediaModes.routed, "location": "12.34.56.78"}, ("routed", "manual", False, "12.34.56.78")),
}


@pytest.mark.parametrize("case", list(SESSION_CASES))
def test_create_session_is_stored_as_requested(server, case):
    kwargs, (media, archive, e2ee, location) = SESSION_CASES[case]
    key = server.projects[0]["api_key"]
    before_ms = int(time.time() * 1000)
    with http_exchanges() as seen:
        session = sdk(server).create_session(**kwargs)
    after_ms = int(time.time() * 1000)

    # The create answer came in the shape this SDK version parses.
    request, response = seen[-1]
    assert response.status_code == 200
    if VERSION >= (3, 11):
        assert request.headers["Accept"] == "application/json"
        assert response.headers["Content-Type"] == "application/json"  # exactly, no charset
    else:
        assert "application/json" not in request.headers.get("Accept", "")
        assert response.headers["Content-Type"].split(";")[0] != "application/json"
        assert response.text.lstrip().startswith("<?xml")

    info = get_session(server, session.session_id)
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["sessionId"] == session.session_id
    assert str(body["projectId"]) == key
    assert (body["mediaMode"], body["archiveMode"], body["e2ee"], body["location"]) == (media, archive, e2ee, location)
    assert body["maxParticipants"] is None
    assert body["endedAt"] is None
    assert before_ms - 5000 <= body["createdAt"] <= after_ms + 5000


def test_e2ee_needs_a_routed_session(server):
    # The SDK does not check this itself; the server answers 400 with a JSON message, which
    # the SDK cannot turn into a session.
    with http_exchanges() as seen, pytest.raises(OpenTokException):
        sdk(server).create_session(e2ee=True)
    assert_json_error(seen[-1][1], 400)

    # The same request by hand, asking for the JSON and for the XML answer.
    p = server.projects[0]
    for accept in ("application/json", "*/*"):
        r = requests.post(f"{server.url}/session/create",
                          data={"p2p.preference": "enabled", "archiveMode": "manual", "e2ee": "true"},
                          headers={"X-OPENTOK-AUTH": rest_jwt(p), "Accept": accept}, timeout=10)
        assert_json_error(r, 400)


def test_archive_mode_always_needs_a_routed_session(server):
    # The SDK refuses this before sending anything; a hand-made request gets a 400.
    p = server.projects[0]
    r = requests.post(f"{server.url}/session/create",
                      data={"p2p.preference": "enabled", "archiveMode": "always"},
                      headers={"X-OPENTOK-AUTH": rest_jwt(p), "Accept": "application/json"}, timeout=10)
    assert_json_error(r, 400)


# --- client tokens ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_sessions(server):
    """Two routed sessions of project 0: tokens are minted for the first one."""
    ot = sdk(server)
    return ot.create_session(media_mode=MediaModes.routed).session_id, ot.create_session(media_mode=MediaModes.routed).session_id


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.value)
def test_minted_token_verifies_with_the_claims_it_was_minted_with(server, two_sessions, role, fmt):
    session, other = two_sessions
    expire = int(time.time()) + 3600
    kwargs = {"role": role, "expire_time": expire, "data": DATA, "initial_layout_class_list": LAYOUT}
    if VERSION >= (3, 10):
        kwargs["use_jwt"] = fmt == "jwt"
    before = int(time.time())
    token = sdk(server).generate_token(session, **kwargs)
    after = int(time.time())
    assert token.startswith("T1==") == (fmt == "t1")

    ok, claims = server.verify(session, token)
    assert ok, claims
    expected = {
        "format": fmt,
        "api_key": server.projects[0]["api_key"],
        "session_id": session,
        "role": role.value,
        "expires_at": expire,
        "connection_data": DATA,
        "initial_layout_classes": LAYOUT,
    }
    assert {k: claims.get(k) for k in expected} == expected
    assert before - 1 <= claims["issued_at"] <= after + 1

    # The same token for another session of the same project is refused.
    ok, err = server.verify(other, token)
    assert not ok
    assert err["code"] == "token_wrong_session", err


def test_default_token(server, two_sessions):
    session, other = two_sessions
    now = int(time.time())
    token = sdk(server).generate_token(session)
    ok, claims = server.verify(session, token)
    assert ok, claims
    assert claims["format"] == DEFAULT_FORMAT
    assert claims["role"] == "publisher"
    assert claims["connection_data"] is None
    assert claims["initial_layout_classes"] == []
    assert now + 86400 - 2 <= claims["expires_at"] <= now + 86400 + 2  # 24 h by default
    ok, err = server.verify(other, token)
    assert not ok and err["code"] == "token_wrong_session", err


# --- REST authentication ---------------------------------------------------------------------

def test_wrong_secret_is_refused(server):
    bad = sdk(server, secret=secrets.token_hex(20))  # right API key, wrong (well-formed) secret
    with http_exchanges() as seen, pytest.raises(OpenTokException) as excinfo:
        bad.create_session()
    assert_sdk_auth_error(excinfo)
    assert_json_error(seen[-1][1], 403)


def test_expired_rest_credential_is_refused(server):
    ot = sdk(server)
    # The SDK signs its X-OPENTOK-AUTH JWT with the clock it reads: an hour behind, the
    # credential it sends expired ~57 minutes ago.
    with sdk_clock_offset(-3600), http_exchanges() as seen, pytest.raises(OpenTokException) as excinfo:
        ot.create_session()
    sent = jwt.decode(seen[-1][0].headers["X-OPENTOK-AUTH"], options={"verify_signature": False})
    assert sent["exp"] < time.time() - 3000
    assert_sdk_auth_error(excinfo)
    assert_json_error(seen[-1][1], 403)

    # The same SDK object with the right clock works.
    assert ot.create_session().session_id


def test_participant_tokens_are_not_rest_credentials(server, two_sessions):
    session, _ = two_sessions
    ot = sdk(server)
    soon = int(time.time()) + 120  # short-lived: looks like a REST credential's lifetime
    tokens = {}
    for fmt in FORMATS:
        extra = {"use_jwt": fmt == "jwt"} if VERSION >= (3, 10) else {}
        tokens[fmt] = ot.generate_token(session, role=Roles.moderator, expire_time=soon, **extra)
    for fmt, token in tokens.items():
        ok, claims = server.verify(session, token)  # a perfectly good client token...
        assert ok, claims
        r = requests.post(f"{server.url}/session/create",  # ...but not a REST credential
                          data={"p2p.preference": "disabled", "archiveMode": "manual"},
                          headers={"X-OPENTOK-AUTH": token, "Accept": "application/json"}, timeout=10)
        assert_json_error(r, 403)


# --- project isolation -----------------------------------------------------------------------

def fake_session_id(api_key):
    """A well-formed session ID (the SDKs' format) that the server never issued."""
    raw = f"1~{api_key}~~{int(time.time() * 1000)}~{secrets.token_urlsafe(18)}~~~"
    return "1_" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def test_another_projects_session_is_not_found(server):
    theirs = sdk(server, project=1).create_session(media_mode=MediaModes.routed).session_id
    # Its owner sees it...
    assert get_session(server, theirs, project=1).status_code == 200
    # ...project 0 does not, under its own API key: 404, as for a session that does not exist.
    body = assert_json_error(get_session(server, theirs, project=0), 404)
    assert "code" in body
    assert_json_error(get_session(server, fake_session_id(server.projects[0]["api_key"]), project=0), 404)
    # Project 0's credential under project 1's API key is an authentication failure.
    assert_json_error(get_session(server, theirs, project=0, path_project=1), 403)
