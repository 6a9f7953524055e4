"""Weights in the app: status lines that say how to get a missing checkpoint, and uploads that are
validated (read weights-only, then loaded by the method's own adapter) before they are kept."""
from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import numpy as np

from ..errors import MattingError
from ..io import Scribbles
from ..paths import cache_dir

def _weights():
    from .. import weights

    return weights


def auto_fetch() -> bool:
    """Whether a missing checkpoint is downloaded on first use (the default; off when the server is set
    to work offline, see :func:`matting.weights.offline_reason`)."""
    return _weights().offline_reason() is None


def checkpoint_state(checkpoint_id: str) -> str:
    """weights.status(), or 'unknown' when the manifest cannot answer (never raises)."""
    try:
        return _weights().status(checkpoint_id)
    except MattingError:
        return "unknown"


def is_ready(spec) -> bool:
    """True when the method needs no weights or one of its checkpoints can be loaded now."""
    return spec.can_run_with(_weights().usable)


def fetch_command(checkpoint_id: str) -> str:
    """The terminal command (for the CLI and the server log; the app's pages do not show it)."""
    return f"python -m matting.weights fetch {checkpoint_id}"


def status_line(checkpoint_id: str) -> str:
    """One Markdown line about one checkpoint, for a person at the browser."""
    weights = _weights()
    try:
        item = weights.entry(checkpoint_id)
    except MattingError as exc:
        return f"- **Unknown** `{checkpoint_id}`: {exc.for_browser}"
    state = checkpoint_state(checkpoint_id)
    what = f"`{item.id}` ({item.file}, {item.size_text}, licence {item.license})"
    if state in ("present", "unverified"):  # of weights.USABLE; an override is said in its own words
        return f"- {what}: **present**"
    if state == "override":
        return f"- {what}: **using an uploaded / user-supplied file**"
    if state == "override_missing":
        return f"- {what}: **the server's own file for it is missing**; upload the file below."
    reason = {"corrupt": "the server's copy is damaged", "partial": "an interrupted download is here"}.get(
        state, "not on this server yet")
    if not auto_fetch():
        return f"- {what}: **{reason}**, and this server works offline: upload the file below."
    action = {"corrupt": "replaces it", "partial": "resumes it"}.get(state, f"fetches it ({item.size_text})")
    return f"- {what}: **{reason}**. **Download** {action}, or the first run does; or upload the file below."


def status_markdown(spec) -> str:
    if not spec.weights:
        return "No learned weights needed."
    return "\n".join(status_line(c) for c in spec.weights)


def short_status(spec) -> str:
    """A few words for tables: 'not needed', 'present', 'on first use (26.3 MB)', 'missing (26.3 MB)'."""
    if spec.unavailable:
        return f"not runnable: {spec.unavailable}"
    if not spec.weights:
        return "not needed"
    if spec.can_run_with(_weights().usable):
        return "present"
    missing = [c for c in spec.checkpoints_for({}) if not _weights().usable(c)] or list(spec.weights[:1])
    try:
        size = " + ".join(_weights().entry(c).size_text for c in missing)
    except MattingError:
        size = "?"
    if auto_fetch():
        return f"on first use ({size})"
    return f"missing ({size})"


def _synthetic_inputs(side: int = 128) -> dict:
    """A tiny scene with every input a method may need: a disc in front of a gradient, its trimap and
    the gradient alone as the background plate."""
    yy, xx = np.mgrid[:side, :side].astype(np.float32) / side
    plate = np.dstack([xx, yy, 0.5 * (xx + yy)]).astype(np.float32)
    radius = np.hypot(xx - 0.5, yy - 0.5)
    inside = radius < 0.3
    image = plate.copy()
    image[inside] = (0.9, 0.3, 0.2)
    trimap = np.full((side, side), 128, np.uint8)
    trimap[radius < 0.2] = 255
    trimap[radius > 0.4] = 0
    return {"image": image, "trimap": trimap, "background": plate}


def _smoke_run(spec, checkpoint_id: str) -> bool:
    """Run the method once on a tiny scene so that its adapter loads the checkpoint its own way (aliases,
    converters, strict key check). False when no parameter selects this checkpoint, so the run would
    not prove anything about it."""
    from ..runner import run

    selector = spec.params_selecting(checkpoint_id)
    if selector is None:
        return False
    scene = _synthetic_inputs()
    inputs = {name: scene[name] for name in spec.required_inputs if name in scene}
    if spec.one_of_inputs:
        name = "trimap" if "trimap" in spec.one_of_inputs else spec.one_of_inputs[0]
        inputs[name] = Scribbles(scene["trimap"] == 255, scene["trimap"] == 0) if name == "scribbles" else scene[name]
    run(spec.id, scene["image"], foreground="none", **inputs, **selector)
    return True


def _model_check(checkpoint_id: str, path: Path) -> None:
    """Fallback when no method run can exercise the file: build its network from it (the architecture
    reads, converts and strictly loads it, as every run does)."""
    from ..models import create

    item = _weights().entry(checkpoint_id)
    create(item.arch, checkpoint=path, container=item.container, **dict(item.model_kwargs))


def _stored_copy(checkpoint_id: str, file_path: Path) -> Path:
    """Uploads live in a temporary folder that Gradio cleans; keep a copy under the cache."""
    digest = hashlib.sha256()
    with open(file_path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    folder = cache_dir() / "uploaded_weights" / checkpoint_id / digest.hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_path.name  # keeps the user's name in error messages
    if not target.exists():
        shutil.copyfile(file_path, target)
    return target


_accepted: dict[str, Path] = {}  # checkpoint id → last upload that passed, to fall back to
_lock = threading.Lock()


def use_uploaded_checkpoint(checkpoint_id: str, file_path, spec=None) -> str:
    """Validate an uploaded checkpoint through the method's own loading, then keep using it.

    The file is first read weights-only (a file carrying code is refused), then made the checkpoint
    with :func:`matting.weights.use_file` and loaded by the method's adapter in a run on a tiny scene;
    any mismatch puts the previous file back and is reported with the adapter's list of mismatches.
    """
    if not checkpoint_id:
        raise MattingError("Choose which checkpoint the file is.")
    if not file_path:
        raise MattingError("Upload the checkpoint file first.")
    path = Path(file_path)
    weights = _weights()
    item = weights.entry(checkpoint_id)
    if spec is None or item.id not in spec.weights:
        from ..registry import methods

        spec = next((m for m in methods() if item.id in m.weights), None)
    with _lock:
        try:
            weights.read_checkpoint(path, item.container)  # refuses pickled code and unreadable files
            stored = _stored_copy(item.id, path)
            weights.use_file(item.id, stored)
            try:
                exercised = spec is not None and _smoke_run(spec, item.id)
                if not exercised:
                    _model_check(item.id, stored)
            except BaseException:
                weights.use_file(item.id, _accepted.get(item.id))
                raise
        except MattingError as exc:
            raise MattingError(f"The file {path.name!r} cannot be used as '{item.id}' ({item.file}).\n{exc}") from None
        except Exception as exc:  # noqa: BLE001 - a hostile or odd file must never crash the app
            raise MattingError(f"The file {path.name!r} cannot be used as '{item.id}' ({item.file}): "
                               f"{type(exc).__name__}: {exc}") from None
        _accepted[item.id] = stored
    how = f"{spec.name} loaded it and ran" if exercised else "it fits the network"
    return (f"**Accepted:** {path.name} is used as `{item.id}` from now on, for every user of this app "
            f"until it restarts ({how}).")
