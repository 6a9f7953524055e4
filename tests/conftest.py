import importlib.util
import json
import os
import tempfile
import socket
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Checkpoints are fetched on first use by default; the suite never downloads from a real address, so it
# runs offline unless told otherwise (tests of fetching unset this and serve files from 127.0.0.1).
os.environ.setdefault("MATTING_OFFLINE", "1")
# Gradio's file cache (gradio/ under the system temp folder) is shared by every app on the machine, and each app's cache cleaning
# (delete_cache) removes files another one is serving; a test session keeps its own.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="matting-tests-gradio-"))

REPO = Path(__file__).resolve().parents[1]


def _shared_dir():
    env = os.environ.get("MATTING_SHARED")
    path = Path(env) if env else REPO.parent / "shared"
    return path if path.is_dir() else None


SHARED = _shared_dir()


@pytest.fixture(scope="session")
def shared_dir():
    if SHARED is None:
        pytest.skip("../shared is not present (set MATTING_SHARED to point at it)")
    return SHARED


@pytest.fixture(scope="session")
def fidelity_dir(shared_dir):
    path = shared_dir / "fidelity"
    if not path.is_dir():
        pytest.skip("../shared/fidelity is not present")
    return path


@pytest.fixture(scope="session")
def alphamatting_dir(shared_dir):
    path = shared_dir / "data" / "alphamatting_dev"
    if not path.is_dir():
        pytest.skip("../shared/data/alphamatting_dev is not present")
    return path


@pytest.fixture(scope="session")
def recipe(fidelity_dir):
    """The fixtures' ``recipe.py`` (deterministic weights and inputs), imported from ../shared."""
    spec = importlib.util.spec_from_file_location("fidelity_recipe", fidelity_dir / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def recipe_sim(fidelity_dir, recipe):
    """../shared/fidelity/recipe_sim.py, SIM's recipe variant (it imports ``recipe`` by name: the
    session's copy is lent to it)."""
    spec = importlib.util.spec_from_file_location("fidelity_recipe_sim", fidelity_dir / "recipe_sim.py")
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("recipe")
    sys.modules["recipe"] = recipe
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("recipe", None)
        else:
            sys.modules["recipe"] = saved
    return module


@pytest.fixture(scope="session")
def official_keys(fidelity_dir):
    """``official_keys(name, limit=None)``: [(key, shape)] of the official state_dict, in order."""

    def load(name, limit=None):
        with open(fidelity_dir / f"{name}.keys.json") as handle:
            items = [(key, list(shape)) for key, shape in json.load(handle).items()]
        return items[:limit]

    return load


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for in-process app servers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Hypothesis profiles for the property tests (tests/test_hostile_inputs.py): "default" keeps CI fast;
# HYPOTHESIS_PROFILE=thorough runs ≥ 1,000 generated cases per test for a manual run. No case may take
# longer than 60 s. No example database is written into the work tree.
try:
    from datetime import timedelta

    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is only needed by the property tests
    pass
else:
    _common = dict(deadline=timedelta(seconds=60), database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("default", max_examples=100, **_common)
    settings.register_profile("thorough", max_examples=1000, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
