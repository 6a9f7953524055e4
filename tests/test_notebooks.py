"""The teaching notebooks (notebooks/*.ipynb) run top to bottom, offline, and are committed without outputs.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (this interpreter: ipykernel is
installed in the virtual environment), with the working directory ``notebooks/`` and ``MPLBACKEND=Agg``.
The execution time of every notebook is measured and printed; there is deliberately no timed assertion
(speed targets belong to the benchmarks, not to the tests).

Notebooks that read ``../shared/data/alphamatting_dev`` (metadata ``matting.uses_shared_data``) also run
once with ``MATTING_SHARED`` pointing at a folder that does not exist, to check their synthetic fallback.
A notebook whose offline weights (metadata ``matting.requires_weights``) are missing is skipped with the
fetch command: ``./workbench.sh setup`` installs them.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED_COUNT = 9
CELL_TIMEOUT_S = 120
KERNEL = "python3"


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _settings(notebook) -> dict:
    return notebook.metadata.get("matting", {})


def _missing_weights(notebook) -> list[str]:
    from matting import weights

    return [item for item in _settings(notebook).get("requires_weights", []) if weights.path(item) is None]


def _execute(path: Path, extra_env: dict | None = None):
    """Run the notebook in a fresh kernel; return (executed notebook, seconds)."""
    notebook = _read(path)
    env = {**os.environ, "MPLBACKEND": "Agg", **(extra_env or {})}
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as error:
        pytest.fail(f"{path.name} failed:\n{error}", pytrace=False)
    return notebook, time.perf_counter() - start


def _report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n{text}")


def test_the_notebooks_are_numbered_in_order():
    assert len(NOTEBOOKS) == EXPECTED_COUNT, [p.name for p in NOTEBOOKS]
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, EXPECTED_COUNT + 1)]


def test_readme_links_every_notebook():
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"({path.name})" in readme, f"notebooks/README.md does not link {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    notebook = _read(path)
    nbformat.validate(notebook)
    assert notebook.metadata.get("kernelspec", {}).get("name") == KERNEL
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {index} has outputs; strip them before committing"
            assert cell.execution_count is None, f"{path.name} cell {index} has an execution count"


def test_kernel_is_this_interpreter(tmp_path):
    """'python3' must resolve to the interpreter running the tests (the one with matting's requirements)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    client = NotebookClient(notebook, timeout=60, kernel_name=KERNEL, resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env={**os.environ, "MPLBACKEND": "Agg"})
    printed = notebook.cells[0].outputs[0]["text"].strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, capsys, record_property):
    missing = _missing_weights(_read(path))
    if missing:
        pytest.skip(f"offline weights missing: {', '.join(missing)} (python -m matting.weights fetch --default)")
    _, seconds = _execute(path)
    record_property("seconds", round(seconds, 1))
    _report(capsys, f"{path.name}: executed in {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _settings(_read(p)).get("uses_shared_data")],
                         ids=lambda p: p.stem)
def test_notebook_runs_without_shared_data(path, tmp_path, capsys, record_property):
    missing = _missing_weights(_read(path))
    if missing:
        pytest.skip(f"offline weights missing: {', '.join(missing)} (python -m matting.weights fetch --default)")
    notebook, seconds = _execute(path, {"MATTING_SHARED": str(tmp_path / "no-shared-here")})
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs if output.get("output_type") == "stream")
    assert "synthetic" in printed, f"{path.name} did not say that it fell back to synthetic data"
    record_property("seconds", round(seconds, 1))
    _report(capsys, f"{path.name} (no ../shared): executed in {seconds:.1f} s")
