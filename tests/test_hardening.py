"""Hardening beyond the input layer: damaged (NaN) checkpoints, CLI output folders, messages for what
Gradio rejects before a handler runs, and many clients asking for the same result at once.

The app tests launch the real app in this process on 127.0.0.1 and a free port; every image is a small
synthetic composite (48×64), so the whole file runs in well under a minute.
"""
from __future__ import annotations

import json
import os
import stat
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from PIL import Image

import matting
from matting import cli, io
from matting.errors import MattingError
from matting.synthetic import make_composite

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

HEIGHT, WIDTH = 48, 64


def _scene(seed=0):
    return make_composite(HEIGHT, WIDTH, seed=seed, edge=4.0)


def _nan_checkpoint(path: Path, arch: str, **kwargs) -> Path:
    """A checkpoint of ``arch`` that is complete and of the right shapes, but holds NaN entries."""
    import torch

    from matting.models import create

    torch.manual_seed(0)
    state = create(arch, **kwargs).state_dict()
    first = next(key for key, value in state.items() if value.is_floating_point() and value.dim() > 1)
    state[first].view(-1)[:3] = float("nan")
    torch.save(state, path)
    return path


# --------------------------------------------------------------------------- NaN weights

def test_load_into_refuses_non_finite_weights_and_names_the_file():
    import torch

    from matting.models import load_into

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    state["0.weight"][0, 0, 0, 0] = float("nan")
    state["1.running_var"][1] = float("inf")
    with pytest.raises(MattingError, match=r"mine\.pth holds NaN or infinite weights in 2 tensors: "
                                           r"0\.weight \(1 of 108\), 1\.running_var \(1 of 4\)"):
        load_into(model, state, what="mine.pth")
    load_into(model, model.state_dict(), what="mine.pth")  # finite weights load as before


def test_run_with_a_nan_checkpoint_from_the_environment_names_it(tmp_path, monkeypatch):
    from matting.adapters import torch_utils

    damaged = _nan_checkpoint(tmp_path / "damaged_webcam.ckpt", "modnet")
    monkeypatch.setenv("MATTING_WEIGHTS_MODNET_WEBCAM", str(damaged))
    torch_utils.clear_cache()
    try:
        with pytest.raises(MattingError, match=r"damaged_webcam\.ckpt \(checkpoint 'modnet_webcam'\) holds NaN"):
            matting.run("modnet", _scene().image, checkpoint="webcam", foreground="none")
    finally:
        torch_utils.clear_cache()


# --------------------------------------------------------------------------- CLI output folders

def _cli_run(tmp_path, out, capsys) -> tuple[int, str]:
    scene = _scene()
    image = io.save_png(tmp_path / "photo.png", scene.image)
    trimap = io.save_png(tmp_path / "trimap.png", scene.trimap(3))
    capsys.readouterr()
    code = cli.main(["run", "closed_form", "--image", str(image), "--trimap", str(trimap), "--out", str(out),
                     "-p", "foreground=none"])
    return code, capsys.readouterr().err


def _assert_clean_error(outcome, *fragments):
    code, stderr = outcome
    assert code == 2, stderr
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def test_cli_out_that_is_a_file(tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    _assert_clean_error(_cli_run(tmp_path, existing, capsys), "results.txt", "is a file, not a folder")
    assert existing.read_text() == "keep me"


def test_cli_out_under_a_file(tmp_path, capsys):
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    _assert_clean_error(_cli_run(tmp_path, existing / "sub" / "out", capsys), "results.txt",
                        "is a file, not a folder")
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "results.txt", "trimap.png"]


def test_cli_out_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: take a folder no one can write instead
        target = Path("/proc/matting-out")
    else:
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = locked / "out"
    try:
        _assert_clean_error(_cli_run(tmp_path, target, capsys), str(target), "cannot be written")
    finally:
        locked.chmod(stat.S_IRWXU)
    assert not target.exists()


def test_cli_run_that_fails_leaves_no_output_folder(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "new" / "out"
    assert cli.main(["run", "closed_form", "--image", str(bad), "--trimap", str(bad), "--out", str(out)]) == 2
    assert "is not an image" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
