"""Checkpoints: the manifest, where the files live, fetching and verifying them, loading them safely.

The manifest (``weights/manifest.json``, or the file named by ``MATTING_WEIGHTS_MANIFEST``) lists
every checkpoint the workbench can use, with its format, size, sha256, licence, official origin and
the download sources to try, in order. Files are kept in :func:`matting.paths.weights_dir`.

Where a file is looked for, first match wins:

1. a file given in this process with :func:`use_file` (the UI upload, the CLI's ``--weights``);
2. the environment variable ``MATTING_WEIGHTS_<ID>`` (e.g. ``MATTING_WEIGHTS_U2NET=/data/u2net.pth``);
3. ``<weights dir>/<file name>``.

A missing file is fetched on first use (:func:`require`, which every method calls), with its progress
on the terminal and to any ``on_progress(done_bytes, total_bytes)`` callback (:func:`reporting` hands
one down from an app handler). ``MATTING_OFFLINE=1`` (or Hugging Face's ``HF_HUB_OFFLINE=1``, or the
older ``MATTING_AUTO_FETCH=0``) turns that off: then :func:`require` uses only what is on this machine
and explains how to get the rest. With no network the first attempt gives up within a few seconds and
later ones at once (:mod:`.reach`). Errors carry a second text for a person at the app
(:attr:`matting.errors.MattingError.for_browser`): no server paths, settings or commands.

Checkpoints are loaded with ``torch.load(..., weights_only=True)`` only: a file that carries code or
arbitrary objects is refused, never unpickled.

Command line::

    python -m matting.weights list
    python -m matting.weights fetch u2net modnet_photographic
    python -m matting.weights fetch --default
    python -m matting.weights fetch --all        # everything, before a session without network
    python -m matting.weights verify

One concern per module. Each imports only the modules after its arrow, and never this facade, so
there is no import cycle (``tests/test_weights.py`` checks)::

    _fs         durable writes, .part naming, locks, short reasons, sizes, tqdm bar (no package imports)
    manifest    Source, Entry, manifest(), entry()                        <- _fs
    progress    on_progress callbacks: tqdm adapter, reporting(), Meter   <- _fs
    reach       offline switch, host probe, unreachable-host memory       <- manifest, _fs
    pins        sha256 of files, expected_sha256, local pins              <- manifest, _fs
    store       use_file, status, usable, path (where a file is)          <- manifest, pins, _fs
    hf_model    hf_model container: revision and config pins, model folder <- pins, manifest
    sources     the url / hf / pip_wheel transports                       <- manifest, hf_model, _fs
    download    fetch, fetch_default, fetch_all, require, install         <- store, pins, sources, reach, ...
    verify      Verification, verify                                      <- store, pins, manifest, hf_model
    read        read_checkpoint, container_for                            <- manifest, _fs
    cli         the command line                                          <- download, verify, ...; matting.models
"""
from .download import fetch, fetch_all, fetch_default, require
from .manifest import CONTAINERS, DEFAULT_MANIFEST, Entry, Source, entry, manifest, manifest_path, manifest_problems
from .pins import expected_sha256, pins_path, sha256_file
from .progress import Meter, TqdmProgress, reporting
from .reach import offline_reason
from .read import container_for, read_checkpoint
from .store import STATUS_HELP, USABLE, path, status, usable, use_file
from .verify import Verification, verify

__all__ = [
    "CONTAINERS", "DEFAULT_MANIFEST", "Entry", "STATUS_HELP", "Source", "USABLE", "Verification",
    "Meter", "TqdmProgress", "container_for", "entry", "expected_sha256", "fetch", "fetch_all", "fetch_default",
    "manifest", "manifest_path", "manifest_problems", "offline_reason", "path", "pins_path",
    "read_checkpoint", "reporting", "require", "sha256_file", "status", "usable", "use_file", "verify",
]
