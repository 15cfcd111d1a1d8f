"""Archiving with the official Python SDK (3.15.0 and 3.10.0: the same file runs in both
virtualenvs) against a live server. `conclave client` bots publish real media (VP8 and Opus) in
routed sessions; the SDK starts, stops, gets, lists and deletes archives, and the finished
files are downloaded through the signed URL and checked: a composed MP4 that ffprobe decodes,
an individual ZIP with one file per stream (compat doc 6.2 and 7)."""
import datetime
import io
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import zipfile

import opentok
import pytest
from opentok import ArchiveError, MediaModes, OpenTok, OutputModes, Roles
from opentok.exceptions import NotFoundError, OpenTokException

SDK = tuple(int(x) for x in opentok.__version__.split(".")[:3])
RECORD_SECONDS = 3  # long enough for a duration of at least 1 s and a few keyframes


def sdk(server, project=0):
    p = server.projects[project]
    return OpenTok(p["api_key"], p["api_secret"], api_url=server.url)


def routed_session(server, bots, ot, publishers=("alice-cam",)):
    """A routed session with one real-media publishing bot per name in `publishers`."""
    session = ot.create_session(media_mode=MediaModes.routed).session_id
    started = [
        bots(server, session, ot.generate_token(session, role=Roles.publisher, data=name), publish=name, real_media=True)
        for name in publishers
    ]
    return session, started


def wait_until_processed(ot, archive_id, timeout=60):
    """Polls get_archive until the stopped archive has been processed; returns the last one."""
    deadline = time.monotonic() + timeout
    while True:
        a = ot.get_archive(archive_id)
        if a.status != "stopped" or time.monotonic() > deadline:
            return a
        time.sleep(0.25)


def download(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        body = r.read()
        assert int(r.headers["Content-Length"]) == len(body)
        return body


def assert_fresh_archive(a, server, session, name, mode, started_before):
    """What start_archive returns (compat 7.1)."""
    assert a.status == "started"
    assert str(uuid.UUID(a.id)) == a.id
    assert a.session_id == session
    assert a.name == name
    assert a.output_mode == mode
    assert (a.has_audio, a.has_video) == (True, True)
    assert a.partner_id == int(server.projects[0]["api_key"])
    # createdAt is in ms: the SDK divides by 1000, so a seconds value would land in 1970.
    assert isinstance(a.created_at, datetime.datetime)
    assert abs(a.created_at.timestamp() - started_before) < 60
    assert (a.size, a.duration, a.url) == (0, 0, None)


def assert_available(a, archive_id, mode):
    assert a.id == archive_id
    assert a.status == "available", f"archive ended as {a.status}"
    assert a.output_mode == mode
    assert a.size > 0
    assert a.duration >= 1
    assert a.url and a.url.startswith("http")


def ffprobe(data, tmp_path):
    path = tmp_path / "archive.mp4"
    path.write_bytes(data)
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height:format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_composed_archive_lifecycle(server, bots, tmp_path):
    ot = sdk(server)
    session, publishers = routed_session(server, bots, ot, ("alice-cam", "bob-cam"))

    before = time.time()
    a = ot.start_archive(session, name="py composed", output_mode=OutputModes.composed, resolution="1280x720")
    assert_fresh_archive(a, server, session, "py composed", OutputModes.composed, before)
    assert a.resolution == "1280x720"
    assert a.id in [x.id for x in ot.list_archives(session_id=session).items]
    assert ot.get_archive(a.id).status == "started"
    time.sleep(RECORD_SECONDS)

    stopped = ot.stop_archive(a.id)
    assert (stopped.id, stopped.status, stopped.url) == (a.id, "stopped", None)
    with pytest.raises(ArchiveError):  # 409: not recording any more
        ot.stop_archive(a.id)

    done = wait_until_processed(ot, a.id)
    assert_available(done, a.id, OutputModes.composed)
    assert done.name == "py composed" and done.session_id == session
    assert done.created_at == a.created_at
    data = download(done.url)
    assert len(data) == done.size
    assert data[4:8] == b"ftyp"
    probe = ffprobe(data, tmp_path)
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert set(kinds) == {"video", "audio"}
    assert (kinds["video"]["width"], kinds["video"]["height"]) == (1280, 720)
    assert float(probe["format"]["duration"]) >= 1

    listed = ot.list_archives(session_id=session)
    assert listed.count == 1
    assert [(x.id, x.status) for x in listed.items] == [(a.id, "available")]
    assert listed.items[0].url
    assert a.id in [x.id for x in ot.list_archives(count=1000).items]

    assert ot.delete_archive(a.id) is None
    assert ot.get_archive(a.id).status == "deleted"
    listed = ot.list_archives(session_id=session)
    assert (listed.count, listed.items) == (0, [])
    assert a.id not in [x.id for x in ot.list_archives(count=1000).items]
    with pytest.raises(urllib.error.HTTPError) as e:  # the file went with it
        download(done.url)
    assert e.value.code == 404


def test_individual_archive_lifecycle(server, bots):
    ot = sdk(server)
    session, publishers = routed_session(server, bots, ot, ("carol-cam", "dave-cam"))

    before = time.time()
    a = ot.start_archive(session, name="py individual", output_mode=OutputModes.individual)
    assert_fresh_archive(a, server, session, "py individual", OutputModes.individual, before)
    time.sleep(RECORD_SECONDS)

    a.stop()  # the Archive object's own method: POST …/stop, then it takes the answer's fields
    assert a.status == "stopped"
    done = wait_until_processed(ot, a.id)
    assert_available(done, a.id, OutputModes.individual)
    data = download(done.url)
    assert len(data) == done.size
    assert data[:2] == b"PK"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        names = z.namelist()
        manifests = [n for n in names if n.endswith(".json")]
        media = [n for n in names if not n.endswith(".json")]
        # One media file per published stream, plus a manifest.
        assert len(manifests) == 1 and len(media) == len(publishers)
        assert sorted(n.rsplit(".", 1)[0] for n in media) == sorted(b.stream_id for b in publishers)
        assert all(z.getinfo(n).file_size > 0 for n in media)

    listed = ot.list_archives(session_id=session)
    assert (listed.count, [x.id for x in listed.items]) == (1, [a.id])
    assert listed.items[0].output_mode == OutputModes.individual

    done.delete()  # the Archive object's own method
    assert ot.get_archive(a.id).status == "deleted"
    assert ot.list_archives(session_id=session).count == 0


def test_start_refusals_and_multi_archive_tags(server, bots):
    ot = sdk(server)
    relayed = ot.create_session().session_id  # relayed is the default
    with pytest.raises(ArchiveError):  # 409: only routed sessions are recorded
        ot.start_archive(relayed)
    theirs = sdk(server, 1).create_session(media_mode=MediaModes.routed).session_id
    with pytest.raises(NotFoundError):  # 404: another project's session
        ot.start_archive(theirs)

    # One archive per multiArchiveTag; no tag counts as a tag of its own (an automatic,
    # untagged archive can run beside a manual one with a tag).
    session, _ = routed_session(server, bots, ot)
    first = ot.start_archive(session)
    assert (first.status, first.name, first.output_mode) == ("started", None, OutputModes.composed)
    with pytest.raises(ArchiveError):  # 409: already recording, no multiArchiveTag
        ot.start_archive(session)

    one = ot.start_archive(session, name="one", multi_archive_tag="one", max_bitrate=2_000_000)
    assert one.max_bitrate == 2_000_000
    if SDK >= (3, 15, 0):  # quantization_parameter arrived after 3.10 (argument and attribute)
        two = ot.start_archive(session, name="two", multi_archive_tag="two", quantization_parameter=25)
        assert two.quantization_parameter == 25
    else:
        assert not hasattr(one, "quantization_parameter")
        two = ot.start_archive(session, name="two", multi_archive_tag="two")
    assert (one.status, two.status) == ("started", "started")
    assert len({first.id, one.id, two.id}) == 3
    with pytest.raises(ArchiveError):  # 409: same tag as a running archive
        ot.start_archive(session, multi_archive_tag="one")
    with pytest.raises(ArchiveError):  # 409: still one untagged archive running
        ot.start_archive(session)
    running = [x for x in ot.list_archives(session_id=session).items if x.status == "started"]
    assert sorted(x.id for x in running) == sorted([first.id, one.id, two.id])

    # An archive that is still recording cannot be deleted (409) and keeps recording.
    with pytest.raises(OpenTokException):
        ot.delete_archive(one.id)
    assert ot.get_archive(one.id).status == "started"
    for x in (first, one, two):
        assert ot.stop_archive(x.id).status == "stopped"
    # With the tag free again, it can be used again.
    again = ot.start_archive(session, multi_archive_tag="one")
    assert ot.stop_archive(again.id).status == "stopped"


def test_list_paging_and_session_filter(server, bots):
    ot = sdk(server)
    session, _ = routed_session(server, bots, ot)
    other, _ = routed_session(server, bots, ot, ("other-cam",))
    ids = []
    for name in ("p0", "p1", "p2"):
        a = ot.start_archive(session, name=name)
        time.sleep(1)
        ot.stop_archive(a.id)
        ids.append(a.id)
    elsewhere = ot.start_archive(other, name="elsewhere")
    newest_first = list(reversed(ids))

    everything = ot.list_archives(session_id=session)
    assert everything.count == 3
    assert [x.id for x in everything.items] == newest_first
    assert [x.name for x in everything.items] == ["p2", "p1", "p0"]
    assert all(x.session_id == session for x in everything.items)

    # count is the total that matched, not the page size.
    page = ot.list_archives(offset=1, count=1, session_id=session)
    assert (page.count, [x.id for x in page.items]) == (3, [newest_first[1]])
    page = ot.list_archives(offset=0, count=2, session_id=session)
    assert (page.count, [x.id for x in page.items]) == (3, newest_first[:2])
    page = ot.list_archives(offset=2, count=50, session_id=session)
    assert (page.count, [x.id for x in page.items]) == (3, newest_first[2:])
    page = ot.list_archives(offset=3, session_id=session)
    assert (page.count, page.items) == (3, [])

    # Without a filter: the whole project, newest first (the bare call sends no query).
    project = ot.list_archives()
    assert project.count >= 4
    assert [x.id for x in project.items[:4]] == [elsewhere.id] + newest_first
    top = ot.get_archives(count=1)  # the older name of the same call
    assert (top.count, [x.id for x in top.items]) == (project.count, [elsewhere.id])
    assert [x.id for x in ot.list_archives(session_id=other).items] == [elsewhere.id]
    ot.stop_archive(elsewhere.id)


def test_other_project_and_unknown_archive_ids(server, bots):
    ot, theirs = sdk(server), sdk(server, 1)
    session, _ = routed_session(server, bots, ot)
    ours = ot.start_archive(session, name="ours")

    # Another project's credential finds nothing under our archive ID (404), whatever the call.
    with pytest.raises(NotFoundError):
        theirs.get_archive(ours.id)
    with pytest.raises(NotFoundError):
        theirs.stop_archive(ours.id)
    with pytest.raises(NotFoundError):
        theirs.delete_archive(ours.id)
    assert ours.id not in [x.id for x in theirs.list_archives(count=1000).items]
    assert theirs.list_archives(session_id=session).count == 0
    assert ot.get_archive(ours.id).status == "started"  # untouched

    unknown = str(uuid.uuid4())
    for call in (ot.get_archive, ot.stop_archive, ot.delete_archive):
        with pytest.raises(NotFoundError):
            call(unknown)
    with pytest.raises(NotFoundError):  # not even an archive ID
        ot.get_archive("not-an-archive-id")
    assert ot.stop_archive(ours.id).status == "stopped"
