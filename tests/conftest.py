"""Shared fixtures: small platforms whose numbers make results hand-computable."""

from __future__ import annotations

import pytest
from hetsim_testing import two_unit_dict

from hetsim.spec.loader import platform_from_dict


@pytest.fixture
def two_units():
    return platform_from_dict(two_unit_dict())


@pytest.fixture
def shared_units():
    return platform_from_dict(two_unit_dict(shared=True))
