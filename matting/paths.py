"""Where the workbench keeps downloaded weights and caches (inside the project by default)."""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Project cache: numba compilation cache, extracted wheels, converted weights."""
    return Path(os.environ.get("MATTING_CACHE_DIR", PROJECT_ROOT / ".cache"))


def weights_dir() -> Path:
    """Downloaded checkpoints live here (never committed)."""
    return Path(os.environ.get("MATTING_WEIGHTS_DIR", PROJECT_ROOT / "weights"))


def numba_cache_dir() -> Path:
    return cache_dir() / "numba"
