"""Prompts (clicks and a box): the JSON form, the CLI form, and clear errors for bad prompts."""
from __future__ import annotations

import json

import numpy as np
import pytest

import matting
from matting import prompts as P
from matting.errors import MattingError
from matting.runner import prepare_inputs


def test_json_form_round_trips_and_accepts_every_source(tmp_path):
    text = '{"points": [[12, 8, 1], [3.5, 20, 0], [5, 5, "+"]], "box": [1, 2, 30, 25]}'
    parsed = P.parse(text)
    assert parsed.points == ((12.0, 8.0, 1), (3.5, 20.0, 0), (5.0, 5.0, 1))
    assert parsed.positive == ((12.0, 8.0), (5.0, 5.0)) and parsed.negative == ((3.5, 20.0),)
    assert parsed.box == (1.0, 2.0, 30.0, 25.0)
    assert P.parse(json.loads(parsed.to_json())) == parsed  # JSON-serialisable, and back
    assert P.parse(text.encode()) == parsed
    (tmp_path / "p.json").write_text(text)
    assert P.parse(str(tmp_path / "p.json")) == parsed
    assert P.parse([[1, 2]]) == P.Prompts(((1.0, 2.0, 1),))  # a bare list of points, positive by default
    assert P.parse({"box": [0, 0, 4, 4]}).points == ()
    assert P.Prompts().add(1, 2).add(3, 4, positive=False).undo() == P.Prompts(((1.0, 2.0, 1),))


def test_cli_form():
    parsed = P.from_cli(["12,8,+", "3,20,-", "7,7"], "1,2,30,25")
    assert parsed.points == ((12.0, 8.0, 1), (3.0, 20.0, 0), (7.0, 7.0, 1)) and parsed.box == (1.0, 2.0, 30.0, 25.0)
    assert P.from_cli(None, None) is None
    with pytest.raises(MattingError, match="x,y,"):
        P.from_cli(["12;8"], None)


@pytest.mark.parametrize("value, message", [
    ('{"points": [[1, 2, 1]', "not valid JSON"),
    ("", "empty"),
    ('{"clicks": []}', "unknown keys 'clicks'"),
    ('{"points": [[1, 2, 7]]}', "label 7"),
    ('{"points": [[1, "a", 1]]}', "must be a number"),
    ('{"points": [[1, NaN, 1]]}', "finite"),
    ('{"points": [1, 2]}', r"\[x, y, label\]"),
    ('{"box": [5, 5, 2, 9]}', "empty"),
    ('{"box": [1, 2, 3]}', "x0, y0, x1, y1"),
    ("42", "must be an object"),
])
def test_malformed_prompts_are_refused_with_a_clear_message(value, message):
    with pytest.raises(MattingError, match=message):
        P.parse(value)


@pytest.mark.parametrize("value, message", [
    ({"points": [[40, 10, 1]]}, r"outside the image, which is 32×24"),
    ({"points": [[-3, 10, 1]]}, "outside the image"),
    ({"points": [[5, 5, 0]]}, "only negative clicks"),
    ({"points": []}, "no clicks"),
    ({"box": [0, 0, 50, 20]}, "reaches outside"),
])
def test_prompts_are_checked_against_the_image(value, message):
    with pytest.raises(MattingError, match=message):
        P.validate(P.parse(value), (24, 32, 3))


def test_runner_checks_prompts_and_who_takes_them():
    image = np.zeros((24, 32, 3), np.float32)
    spec = matting.get("sam_trimap")
    assert spec.accepts("prompts") and spec.describe_needs().startswith("image + prompts")
    inputs = prepare_inputs(spec, image, prompts='{"points": [[3, 4, 1]]}')
    assert inputs.prompts == P.Prompts(((3.0, 4.0, 1),))
    with pytest.raises(MattingError, match="outside the image"):
        prepare_inputs(spec, image, prompts={"points": [[300, 4, 1]]})
    with pytest.raises(MattingError, match="needs prompts"):
        prepare_inputs(spec, image)
    with pytest.raises(MattingError, match="does not take prompts"):
        prepare_inputs(matting.get("closed_form"), image, prompts={"points": [[3, 4, 1]]})
    with pytest.raises(MattingError, match="only negative"):  # before any network is loaded
        matting.run("sam_trimap", image, prompts={"points": [[3, 4, 0]]})


def test_import_matting_does_not_import_transformers():
    import subprocess
    import sys

    code = "import sys, matting; matting.methods(); print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "False"
