"""Fixtures shared by every test directory."""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps whenever every task is blocked (pytest-trio uses it as the
    run's clock when a test asks for it)."""
    return trio.testing.MockClock(autojump_threshold=0)
