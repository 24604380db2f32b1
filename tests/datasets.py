"""Where the shared datasets are: `$PANTAU_DATASETS`, or `shared/datasets` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dataset(name: str) -> Path:
    """The folder of a shared dataset; skip when absent (fail under CI, where nothing may skip)."""
    base = Path(os.environ.get("PANTAU_DATASETS", ROOT.parent / "shared" / "datasets"))
    path = base / name
    if not path.is_dir():
        message = f"dataset {name} not found under {base} (set PANTAU_DATASETS)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
