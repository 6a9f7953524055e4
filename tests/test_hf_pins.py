"""Hugging Face checkpoints (container ``hf_model``): the revision and the config files are pinned.

No download: ``huggingface_hub.hf_hub_download`` is replaced by a fake Hub whose files live in a
Hugging Face-style cache (``…/snapshots/<commit>/<file>``) and whose branch ``main`` can move.

* a branch in the manifest is resolved to its commit on the first download and pinned; a later download
  asks for that commit even after the branch moved, weights and config alike;
* config.json / preprocessor_config.json are pinned by sha256 on the first download; a config changed on
  disk afterwards is refused when the model folder is assembled, with a message saying what to do;
* a config that differs from the manifest's ``companion_sha256`` is refused at download;
* the real manifest names a commit for every hf_model source, or says that the ref is resolved and pinned.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from matting import weights
from matting.errors import MattingError
from matting.weights import hf_model

REPO = "someone/tiny"
COMMIT_1, COMMIT_2 = "1" * 40, "2" * 40


def safetensors_bytes(value: float) -> bytes:
    import torch
    from safetensors.torch import save

    return save({"weight": torch.full((2, 2), value)})


class FakeHub:
    """Commits of one repository (file name → bytes) and a movable ``main``; records every request."""

    def __init__(self, root):
        self.root = root
        self.commits = {}
        self.refs = {}
        self.calls = []

    def add(self, commit, files, ref="main"):
        self.commits[commit] = files
        self.refs[ref] = commit

    def download(self, repo_id, filename, *, revision=None, **kwargs):
        self.calls.append((filename, revision))
        commit = revision if revision in self.commits else self.refs[revision or "main"]
        path = self.root / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.commits[commit][filename])
        return str(path)


def files(config: dict, weight: float = 1.0) -> dict:
    return {"model.safetensors": safetensors_bytes(weight), "config.json": json.dumps(config).encode(),
            "preprocessor_config.json": b'{"do_resize": true}'}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub

    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(weights_dir))
    monkeypatch.setenv("MATTING_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no probe of the real Hub; the fake answers
    monkeypatch.delenv("MATTING_WEIGHTS_TINY_HF", raising=False)
    fake = FakeHub(tmp_path / "hub")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.download)
    return fake


def use_entry(tmp_path, monkeypatch, revision="main", companion_sha256=None):
    source = {"kind": "hf", "repo_id": REPO, "filename": "model.safetensors", "revision": revision}
    if companion_sha256:
        source["companion_sha256"] = companion_sha256
    item = {"id": "tiny_hf", "arch": "sam", "variant": "test", "description": "a test checkpoint",
            "file": "tiny-hf.safetensors", "container": "hf_model", "size": None, "sha256": None,
            "sha256_note": "unknown in this test", "license": "MIT", "default": False,
            "origin": {"paper": "none", "repository": "none", "official_download": "nowhere (test)"},
            "model_kwargs": {"repo_id": REPO}, "sources": [source]}
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(json.dumps({"schema_version": 1, "checkpoints": [item]}))
    monkeypatch.setenv("MATTING_WEIGHTS_MANIFEST", str(manifest_file))


def test_a_branch_is_pinned_to_its_first_commit_for_weights_and_configs(hub, tmp_path, monkeypatch):
    hub.add(COMMIT_1, files({"hidden_size": 8}))
    use_entry(tmp_path, monkeypatch, revision="main")
    first = weights.fetch("tiny_hf", progress=False)
    pin = json.loads(weights.pins_path().read_text())["hf:" + REPO]
    assert pin["requested"] == "main" and pin["commit"] == COMMIT_1
    assert pin["files"]["config.json"] == hashlib.sha256(json.dumps({"hidden_size": 8}).encode()).hexdigest()
    assert hub.calls[0] == ("model.safetensors", "main")
    assert set(hub.calls[1:]) == {("config.json", COMMIT_1), ("preprocessor_config.json", COMMIT_1)}

    hub.add(COMMIT_2, files({"hidden_size": 16}, weight=2.0))  # main moves on
    first.unlink()
    hub.calls.clear()
    weights.fetch("tiny_hf", progress=False)
    assert {revision for _, revision in hub.calls} == {COMMIT_1}, "a later download left the pinned commit"
    config = json.loads((hf_model.companion_dir(REPO) / "config.json").read_text())
    assert config == {"hidden_size": 8}
    print(f"requests after main moved: {hub.calls}")


def test_a_config_changed_after_the_download_is_refused(hub, tmp_path, monkeypatch):
    hub.add(COMMIT_1, files({"hidden_size": 8}))
    use_entry(tmp_path, monkeypatch, revision=COMMIT_1)
    path = weights.fetch("tiny_hf", progress=False)
    assert hf_model.model_folder(path, REPO).is_dir()  # as fetched: accepted
    (hf_model.companion_dir(REPO) / "config.json").write_text('{"hidden_size": 9}')
    with pytest.raises(MattingError, match=r"config.json has changed since it was fetched.*fetch the checkpoint again"):
        hf_model.model_folder(path, REPO)


def test_a_config_that_differs_from_the_manifest_is_refused_at_download(hub, tmp_path, monkeypatch):
    hub.add(COMMIT_1, files({"hidden_size": 8}))
    use_entry(tmp_path, monkeypatch, revision=COMMIT_1, companion_sha256={"config.json": "0" * 64})
    with pytest.raises(MattingError, match=r"config.json of someone/tiny at 1{40} has sha256 [0-9a-f]{64}, but the "
                                           r"manifest says 0{64}"):
        weights.fetch("tiny_hf", progress=False)
    assert not (hf_model.companion_dir(REPO) / "config.json").exists()


def test_config_files_placed_by_hand_are_pinned_on_first_load(hub, tmp_path, monkeypatch):
    use_entry(tmp_path, monkeypatch, revision=COMMIT_1)
    weights_file = tmp_path / "renamed.safetensors"
    weights_file.write_bytes(safetensors_bytes(1.0))
    folder = hf_model.companion_dir(REPO)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    hf_model.model_folder(weights_file, REPO)
    assert "config.json" in json.loads(weights.pins_path().read_text())["hf:" + REPO]["files"]
    (folder / "config.json").write_text('{"hidden_size": 4}')
    with pytest.raises(MattingError, match="has changed since it was fetched"):
        hf_model.model_folder(weights_file, REPO)


def test_every_hf_model_source_of_the_manifest_names_a_commit_or_says_it_pins_one(monkeypatch):
    monkeypatch.delenv("MATTING_WEIGHTS_MANIFEST", raising=False)
    found = []
    for item in weights.manifest().values():
        if item.container != "hf_model":
            continue
        for source in item.sources:
            assert source.filename == hf_model.WEIGHTS_NAME, f"{item.id}: only model.safetensors is ever loaded"
            if not hf_model.is_commit(source.revision):
                assert source.revision not in (None, "main"), f"{item.id}: the revision is not pinned"
                assert "pinned" in (source.citation or ""), f"{item.id}: say that the ref's commit is pinned"
            found.append((item.id, source.revision))
    assert len(found) >= 6
    print(found)


def test_verify_reports_a_changed_config_as_corrupt(hub, tmp_path, monkeypatch):
    hub.add(COMMIT_1, files({"hidden_size": 8}))
    use_entry(tmp_path, monkeypatch, revision=COMMIT_1)
    weights.fetch("tiny_hf", progress=False)
    assert weights.verify("tiny_hf").status == "present"  # against the pin of the fetch
    (hf_model.companion_dir(REPO) / "preprocessor_config.json").write_text("{}")
    found = weights.verify("tiny_hf")
    assert found.status == "corrupt" and "preprocessor_config.json has changed" in found.note
