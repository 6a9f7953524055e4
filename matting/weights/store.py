"""Where a checkpoint's file is, and whether it can be used.

First match wins:

1. a file given in this process with :func:`use_file` (the UI upload, the CLI's ``--weights``);
2. the environment variable ``MATTING_WEIGHTS_<ID>``;
3. ``<weights dir>/<file name>``, checked against its size and sha256 (or local pin).

Nothing here downloads; :func:`matting.weights.require` (in ``download``) fetches on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import MattingError
from ._fs import part_path
from .manifest import Entry, entry
from .pins import expected_sha256, sha256_file

STATUS_HELP = {
    "present": "file present and its sha256 matches",
    "unverified": "file present; no checksum is known yet to check it against",
    "corrupt": "file present but its size or sha256 does not match",
    "partial": "only an interrupted download (.part) is present; fetch resumes it",
    "missing": "file not present",
    "override": "a user-supplied file is used instead (use_file or MATTING_WEIGHTS_<ID>)",
    "override_missing": "a user-supplied file was named but does not exist",
}

USABLE = ("present", "unverified", "override")

# Files given with use_file(), by checkpoint id: process-wide, like the environment variables.
_overrides: dict[str, Path] = {}


def use_file(checkpoint_id: str, file_path) -> Path | None:
    """Use ``file_path`` as checkpoint ``checkpoint_id`` in this process (``None`` forgets it).

    The file is not checked against the manifest's sha256 (a user may supply their own weights); it
    is validated when it is loaded (:func:`read_checkpoint`, then ``matting.models.create``).
    """
    item = entry(checkpoint_id)
    if file_path is None:
        _overrides.pop(item.id, None)
        return None
    candidate = Path(file_path).expanduser()
    if not candidate.is_file():
        raise MattingError(f"{candidate} is not a file, so it cannot be used as the '{item.id}' checkpoint "
                           f"({item.file}). Give the path of the downloaded file.")
    _overrides[item.id] = candidate.resolve()
    return _overrides[item.id]


def _override(item: Entry) -> tuple[Path, str] | None:
    """The user-supplied file for ``item`` and what named it, or None."""
    if item.id in _overrides:
        return _overrides[item.id], "use_file()"
    value = os.environ.get(item.env_var)
    if value:
        return Path(value).expanduser(), f"the environment variable {item.env_var}"
    return None


def _stored_file_status(item: Entry, target: Path) -> str:
    if not target.is_file():
        return "partial" if part_path(target).is_file() else "missing"
    if item.size is not None and target.stat().st_size != item.size:
        return "corrupt"
    expected = expected_sha256(item)
    if expected is None:
        return "unverified"
    return "present" if sha256_file(target) == expected else "corrupt"


def status(checkpoint_id: str) -> str:
    """One of the keys of :data:`STATUS_HELP`."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        return "override" if override[0].is_file() else "override_missing"
    return _stored_file_status(item, item.local_path)


def usable(checkpoint_id: str) -> bool:
    """True when ``checkpoint_id`` can be loaded now without a download: a verified or unverified stored
    file, or a user-supplied one (:func:`use_file`, ``MATTING_WEIGHTS_<ID>``). The one readiness rule
    that the CLI, the app and the benchmarks share; an unknown id is simply not usable."""
    try:
        return status(checkpoint_id) in USABLE
    except MattingError:
        return False


def path(checkpoint_id: str) -> Path | None:
    """The file to load for ``checkpoint_id``: a user override, or a stored file that is not known
    to be corrupt; ``None`` when there is none."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        file_path, how = override
        if not file_path.is_file():
            raise MattingError(
                f"{how} names {file_path} as the '{item.id}' checkpoint, but there is no such file. Correct the "
                "path, or unset it to use the stored file.",
                browser=f"This server is set up to use its own file as the checkpoint '{item.id}', but that file "
                        "is missing. Upload the checkpoint in the Weights panel, or ask whoever runs this server.")
        return file_path
    if _stored_file_status(item, item.local_path) in ("present", "unverified"):
        return item.local_path
    return None


def _not_usable_message(item: Entry) -> str:
    """Why ``item`` cannot be loaded and how to get it (the fetch command, or by hand)."""
    state = _stored_file_status(item, item.local_path)
    if state == "corrupt":
        problem = (f"The stored file {item.local_path} does not match its checksum (damaged, or a different "
                   "file). Fetch it again, which replaces it:")
    else:
        problem = f"The checkpoint '{item.id}' ({item.file}, {item.size_text}) is not present."
        if state == "partial":
            problem += " An interrupted download was found; fetching resumes it:"
        else:
            problem += " Fetch it with:"
    return f"{problem}\n    python -m matting.weights fetch {item.id}\nor {_by_hand(item)}"


def _browser_not_usable(item: Entry, offline: bool) -> str:
    """:func:`_not_usable_message` for a person at the app: what is missing, how big it is, what they
    can do there (no server paths, settings or commands)."""
    what = f"the checkpoint '{item.id}' ({item.file}, {item.size_text}, licence {item.license})"
    state = _stored_file_status(item, item.local_path)
    problem = (f"The server's copy of {what} is damaged." if state == "corrupt"
               else f"This method needs {what}, which is not on this server yet.")
    if offline:
        return (f"{problem} This server works offline, so it downloads nothing; if you have the "
                "file, upload it in the Weights panel.")
    return f"{problem} Press Download in the Weights panel to fetch it, or upload the file there if you have it."


def _by_hand(item: Entry) -> str:
    return (f"download it by hand and place it at\n    {item.local_path}\n"
            f"or point {item.env_var} at it (or upload it in the app).\n"
            f"Where the authors publish it: {item.origin['official_download']}")
