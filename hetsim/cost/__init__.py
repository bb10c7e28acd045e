"""How long one op or one transfer takes on one unit: roofline with efficiencies and overheads."""

from hetsim.cost.model import CostModel
from hetsim.cost.roofline import OpCost, flop_rate, op_cost

__all__ = ["CostModel", "OpCost", "flop_rate", "op_cost"]
