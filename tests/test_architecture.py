"""The package's structure: one-way imports, modest modules, rules with one home, and plug-ins.

The plug-in test is the README's recipe for adding a deep method, done from outside the repository:
one network file, one adapter file and one manifest entry in a temporary package (with entry points),
and the method appears in ``matting.methods()``, the CLI, the app and the benchmark, runs, and its
checkpoint status reads the same in the CLI and the app.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import matting
from matting import models, weights
from matting.weights.manifest import plugin_manifests

PACKAGE = Path(matting.__file__).resolve().parent
REPO = PACKAGE.parent


# --------------------------------------------------------------------------- imports and sizes

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (REPO / relative).with_suffix(".py").is_file() or (REPO / relative / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
    """matting.* module → the matting.* modules it imports, function-local imports included."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from X import Y` imports the module X.Y when there is one, else a name of X
                targets = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t.split(".")[0] == "matting" and t != name}
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if state.get(target) is None:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            found = visit(start)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "matting.runner" in graph["matting.adapters.pipelines"]
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["matting.registry"] = graph["matting.registry"] | {"matting.adapters"}
    assert find_cycle(graph) is not None


def test_the_registry_and_the_low_level_modules_import_no_method():
    graph = import_graph()
    for low_level in ("matting.registry", "matting.trimap", "matting.io", "matting.spec", "matting.weights.store"):
        reached, todo = set(), [low_level]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in reached:
                    reached.add(target)
                    todo.append(target)
        assert not {m for m in reached if m.startswith(("matting.adapters", "matting.runner"))}, low_level


def test_no_module_of_the_package_is_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long


def test_the_ui_names_no_method_outside_the_example_presets():
    ids = {spec.id for spec in matting.methods()}
    for path in (PACKAGE / "ui").glob("*.py"):
        if path.name == "examples.py":
            continue
        strings = {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)}
        assert not strings & ids, (path.name, strings & ids)


# --------------------------------------------------------------------------- rules with one home

def test_input_needs_have_one_rule():
    spec = matting.get("closed_form")
    assert spec.missing_inputs([]) == ["a trimap or scribbles"]
    assert spec.missing_inputs(["scribbles"]) == []
    assert matting.get("bgmv2").missing_inputs(["trimap"]) == ["a background plate"]
    assert spec.describe_needs() == "image + a trimap or scribbles"
    with pytest.raises(matting.MattingError, match="needs a background plate besides the image"):
        matting.run("bgmv2", np.zeros((16, 16, 3), np.float32))


def test_checkpoint_choices_are_declared_on_the_parameter():
    modnet = matting.get("modnet")
    assert modnet.checkpoints_for({"checkpoint": "webcam"}) == ("modnet_webcam",)
    assert modnet.params_selecting("modnet_webcam") == {"checkpoint": "webcam"}
    sim = matting.get("sim")
    assert set(sim.checkpoints_for({})) == {"sim_matting", "sim_classifier"}  # both needed
    assert sim.params_selecting("sim_classifier") == {}
    assert matting.get("u2netp").params_selecting("modnet_webcam") is None


def test_cli_and_app_agree_on_a_checkpoint_given_by_environment(tmp_path, monkeypatch):
    from matting.cli import weights_status
    from matting.ui import checkpoints

    torch = pytest.importorskip("torch")
    path = tmp_path / "mine.ckpt"
    torch.save(models.create("modnet").state_dict(), path)
    spec = matting.get("modnet")
    monkeypatch.setenv(weights.entry("modnet_photographic").env_var, str(path))
    assert weights.status("modnet_photographic") == "override" and weights.usable("modnet_photographic")
    assert weights_status(spec).startswith("present")
    assert checkpoints.short_status(spec) == "present" and checkpoints.is_ready(spec)
    listed = subprocess.run([sys.executable, "-m", "matting", "methods"], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ}, timeout=120)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("modnet "))
    assert "present" in row and "missing" not in row


# --------------------------------------------------------------------------- sessions

def test_a_session_loads_once_and_runs_like_run(monkeypatch):
    from matting.adapters import selfie

    calls = []
    original = selfie.load
    spec = matting.get("selfie_segmentation")
    counting = type(spec)(**{**spec.__dict__, "load": lambda params: calls.append(1) or original(params)})
    monkeypatch.setitem(matting.registry._METHODS, "selfie_segmentation", counting)
    image = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    with matting.session("selfie_segmentation", foreground="none") as session:
        first = session.run(image)
        second = session.run(image[::-1].copy())
    assert len(calls) == 1 and first.alpha.shape == second.alpha.shape == (40, 48)
    assert np.array_equal(first.alpha, matting.run("selfie_segmentation", image, foreground="none").alpha)
    assert len(calls) == 2  # run() is a session used once
    assert "load" in matting.run("selfie_segmentation", image, foreground="none").timings


def test_a_session_validates_parameters_before_loading():
    with pytest.raises(matting.MattingError, match="has no parameter 'radius'"):
        matting.session("u2netp", radius=3)
    with pytest.raises(matting.MattingError, match="must be one of"):
        matting.session("modnet", checkpoint="studio")


# --------------------------------------------------------------------------- a plug-in package

NETWORK = '''
import torch
from torch import nn

from matting.models import InputConfig, register_architecture


@register_architecture("toy_blur", input_config=InputConfig(channels=("R", "G", "B"), example_size=(32, 32)),
                       description="ToyBlur(channels=3)")
class ToyBlur(nn.Module):
    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))
'''

ADAPTER = '''
import numpy as np

from matting import Card, MethodOutput, MethodSpec, register
from matting.adapters import torch_utils


def load(params):
    return torch_utils.load_model("toy_blur", "toy_blur_weights")


def compute(inputs, params, model):
    with torch_utils.inference():
        alpha = torch_utils.plane(model(torch_utils.to_tensor(inputs.image)))
    return MethodOutput(alpha=alpha)


register(MethodSpec(
    id="toy_blur", name="Toy blur (plug-in)", family="automatic", compute=compute, load=load,
    weights=("toy_blur_weights",),
    card=Card(paper="A test plug-in", authors="Tests", year=2026, venue="tests", paper_url="https://example.org",
              code="tests", code_license="MIT", weights_license="MIT", how_it_works="A 3×3 convolution."),
))
'''


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A package outside the repository with one network, one method and one manifest entry."""
    torch = pytest.importorskip("torch")
    root = tmp_path / "site"
    package = root / "toy_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from pathlib import Path\nMANIFEST = Path(__file__).with_name('manifest.json')\n")
    (package / "network.py").write_text(textwrap.dedent(NETWORK))
    (package / "method.py").write_text(textwrap.dedent(ADAPTER))
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    torch.manual_seed(0)
    state = {"conv.weight": torch.randn(1, 3, 3, 3), "conv.bias": torch.zeros(1)}
    torch.save(state, weights_dir / "toy.pth")
    data = (weights_dir / "toy.pth").read_bytes()
    entry = {
        "id": "toy_blur_weights", "arch": "toy_blur", "variant": "test", "description": "a test checkpoint",
        "file": "toy.pth", "container": "torch", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "license": "MIT", "default": False,
        "origin": {"paper": "none", "repository": "none", "official_download": "nowhere (test)"},
        "sources": [{"kind": "url", "url": "http://127.0.0.1:9/toy.pth"}],
    }
    (package / "manifest.json").write_text(json.dumps({"checkpoints": [entry]}))
    info = root / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[matting.architectures]\ntoy = toy_plugin.network\n\n"
        "[matting.methods]\ntoy = toy_plugin.method\n\n"
        "[matting.manifests]\ntoy = toy_plugin:MANIFEST\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), str(REPO), os.environ.get("PYTHONPATH", "")]))
    matting.load_plugins(refresh=True)
    yield root
    matting.unregister("toy_blur")
    models.remove_architecture("toy_blur")
    sys.modules.pop("toy_plugin.method", None)
    sys.modules.pop("toy_plugin.network", None)
    monkeypatch.undo()
    plugin_manifests(refresh=True)


def test_a_plugin_package_adds_a_method_everywhere(plugin_package):
    from matting.bench.models import configs_from_registry
    from matting.cli import weights_status
    from matting.ui import checkpoints, handlers

    spec = matting.get("toy_blur")
    assert "toy_blur" in models.architectures() and weights.entry("toy_blur_weights").arch == "toy_blur"
    assert weights_status(spec) == "present" and checkpoints.short_status(spec) == "present"
    assert ("Toy blur (plug-in)", "toy_blur") in [tuple(c) for c in handlers.method_choices("automatic")]
    assert any(config.arch == "toy_blur" for config in configs_from_registry())
    result = matting.run("toy_blur", np.full((20, 24, 3), 0.5, np.float32), foreground="none")
    assert result.alpha.shape == (20, 24) and 0 <= result.alpha.min() <= result.alpha.max() <= 1
    listed = subprocess.run([sys.executable, "-m", "matting", "methods"], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    row = next(line for line in listed.stdout.splitlines() if line.startswith("toy_blur "))
    assert "present" in row and "automatic" in row


def test_a_plugin_method_gets_a_control_in_the_app(plugin_package):
    from matting.ui.layout import build_demo

    demo = build_demo()
    assert "toy_blur" in json.dumps(demo.config, default=str)


def test_the_model_benchmark_can_call_every_registered_network():
    """Every row of ``python -m matting.bench models`` gets arguments its forward accepts (built from the
    declared input conventions or the architecture's own ``example_inputs``), here at a small size."""
    import dataclasses

    import torch

    from matting.bench.models import configs_from_registry, make_inputs, max_difference, output_tensors

    seen = set()
    for config in configs_from_registry():
        if config.arch in seen:
            continue
        seen.add(config.arch)
        side = 64 * max(1, -(-config.input.stride // 64))  # a multiple of the stride, at least 64
        small = dataclasses.replace(config, size=(side, side))
        inputs = make_inputs(small, torch.device("cpu"))
        model = models.create(config.arch, **config.kwargs).eval()
        with torch.inference_mode():
            outputs = model(*inputs)
        assert outputs is not None, config.label
        # the |Δ| column sees every float output (SIM's forward returns a dict)
        tensors = output_tensors(outputs)
        assert tensors, config.label
        assert max_difference(outputs, outputs) == 0.0
        assert max_difference(outputs, _shifted(outputs, 0.25)) == pytest.approx(0.25, abs=1e-4), config.label  # float32 sums
    assert {"sim", "bgmv1"} <= seen


def _shifted(outputs, delta):
    """``outputs`` with every float tensor moved by ``delta`` (same structure)."""
    import torch

    if isinstance(outputs, torch.Tensor):
        return outputs + delta if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {key: _shifted(value, delta) for key, value in outputs.items()}
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_shifted(item, delta) for item in outputs)
    return outputs
