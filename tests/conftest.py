"""Pytest fixtures only; the shared helpers live in tests/models.py."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)
