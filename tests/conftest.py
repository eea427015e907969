import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("NERIMB_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


def require_corpus(*parts: str) -> Path:
    """Path of a real corpus file/folder under the data dir, or skip the test cleanly."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"corpus not available: {path} (set NERIMB_DATA_DIR)")
    return path
