"""CLI round trips: methods, run (single and batch), eval, and clear errors."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from matting import cli, io
from matting.synthetic import make_composite


def write_scene(folder, name="scene", seed=0):
    scene = make_composite(48, 64, seed=seed, edge=4.0)
    for sub, array in (("input", scene.image), ("trimap1", scene.trimap(2)), ("trimap2", scene.trimap(4)),
                       ("gt", scene.alpha)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        io.save_png(folder / sub / f"{name}.png", array)
    return scene


def test_methods_table(capsys):
    assert cli.main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "closed_form" in out and "image + a trimap or scribbles" in out and "not needed" in out


def test_run_writes_every_output(tmp_path, capsys):
    scene = write_scene(tmp_path)
    out = tmp_path / "out"
    code = cli.main(["run", "closed_form", "--image", str(tmp_path / "input/scene.png"),
                     "--trimap", str(tmp_path / "trimap1/scene.png"), "--out", str(out), "-p", "epsilon=1e-6"])
    assert code == 0
    for name in ("alpha.png", "foreground.png", "cutout.png", "composite.png", "maps/constraints.png", "result.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "result.json").read_text())
    assert summary["params"]["epsilon"] == 1e-6 and summary["input_size"] == [64, 48]
    alpha = io.load_alpha(out / "alpha.png")
    assert np.abs(alpha - scene.alpha).mean() < 0.01
    assert np.asarray(Image.open(out / "cutout.png")).shape == (48, 64, 4)


def test_batch_run_over_a_folder(tmp_path, capsys):
    for seed, name in enumerate(("a", "b")):
        write_scene(tmp_path, name, seed)
    code = cli.main(["run", "knn", "--image", str(tmp_path / "input"), "--trimap", str(tmp_path / "trimap1"),
                     "--out", str(tmp_path / "out"), "-p", "foreground=none"])
    assert code == 0
    assert (tmp_path / "out/a/alpha.png").is_file() and (tmp_path / "out/b/alpha.png").is_file()
    assert "2 of 2 images written" in capsys.readouterr().out


def test_eval_prints_per_image_and_mean_rows(tmp_path, capsys):
    write_scene(tmp_path, "a", 0)
    write_scene(tmp_path, "b", 1)
    report = tmp_path / "rows.json"
    assert cli.main(["eval", "closed_form", "--data", str(tmp_path), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "mean" in out and "SAD (×10³)" in out
    rows = json.loads(report.read_text())
    assert len(rows) == 4 and all(row["sad"] < 0.05 for row in rows)


def test_errors_are_one_line_and_exit_code_two(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    process = subprocess.run(
        [sys.executable, "-m", "matting", "run", "closed_form", "--image", str(tmp_path / "bad.png"),
         "--trimap", str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.startswith("error: The image file 'bad.png' is not an image")
    assert "Traceback" not in process.stderr
