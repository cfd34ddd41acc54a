"""Shared fixtures: the real sample data in ../shared/data (read-only)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real HPA/StarDist samples; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA} (see shared/data/README.md)")
    return SHARED_DATA
