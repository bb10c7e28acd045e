"""Shared by the validation tests: a small module written here, not taken from models/."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


class MLP(torch.nn.Module):
    """Two linear layers around a LayerNorm and a GELU, with a residual: ~1 ms on one core."""

    def __init__(self, d: int = 256, hidden: int = 1024) -> None:
        super().__init__()
        self.up = torch.nn.Linear(d, hidden)
        self.norm = torch.nn.LayerNorm(hidden)
        self.down = torch.nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.nn.functional.gelu(self.norm(self.up(x))))


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return MLP().eval(), (torch.randn(64, 256),)
