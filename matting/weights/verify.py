"""Verification: re-hash stored (or user-supplied) files and report what they are."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .manifest import entry
from .pins import _pin, expected_sha256, pins_path, sha256_file
from .store import _override


@dataclass(frozen=True)
class Verification:
    id: str
    status: str            # 'present', 'pinned', 'corrupt', 'missing', 'override', 'unverified'
    path: Path | None
    sha256: str | None
    expected: str | None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "corrupt"


def verify(checkpoint_id: str) -> Verification:
    """Re-hash the file of ``checkpoint_id`` (no cache). A stored file that has no known checksum is
    pinned now (trust on first use) and reported as 'pinned'."""
    item = entry(checkpoint_id)
    override = _override(item)
    if override is not None:
        file_path, how = override
        if not file_path.is_file():
            return Verification(item.id, "missing", file_path, None, None, f"named by {how} but absent")
        digest = sha256_file(file_path, use_cache=False)
        expected = item.sha256
        note = (f"user-supplied via {how}; " +
                ("matches the manifest" if digest == expected else "not the manifest's file (allowed)"
                 if expected else "no checksum to compare"))
        return Verification(item.id, "override", file_path, digest, expected, note)
    target = item.local_path
    if not target.is_file():
        return Verification(item.id, "missing", None, None, expected_sha256(item))
    digest = sha256_file(target, use_cache=False)
    size = target.stat().st_size
    expected = expected_sha256(item)
    if item.size is not None and size != item.size:
        return Verification(item.id, "corrupt", target, digest, expected,
                            f"size {size} bytes, expected {item.size}")
    if expected is None:
        _pin(item, digest, size, "verify (file placed by hand)")
        return Verification(item.id, "pinned", target, digest, None,
                            f"no published checksum; pinned now in {pins_path()}")
    if digest != expected:
        return Verification(item.id, "corrupt", target, digest, expected, "sha256 mismatch")
    problem = _companion_problem(item)
    if problem:
        return Verification(item.id, "corrupt", target, digest, expected, problem)
    return Verification(item.id, "present", target, digest, expected)


def _companion_problem(item) -> str | None:
    """For a Hugging Face checkpoint: whether its fetched config files are still the ones pinned."""
    from ..errors import MattingError
    from .hf_model import companion_dir, verify_companions

    repo_id = item.model_kwargs.get("repo_id") if item.container == "hf_model" else None
    if not repo_id or not (companion_dir(repo_id) / "config.json").is_file():
        return None
    try:
        verify_companions(repo_id, companion_dir(repo_id))
    except MattingError as exc:
        return str(exc)
    return None

