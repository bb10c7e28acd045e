"""memory_policy: offload — weights over capacity stream in from the next memory, by hand."""

from __future__ import annotations

import pytest
from hetsim_testing import two_unit_dict

import hetsim
from hetsim.errors import OutOfMemoryError, ScenarioError
from hetsim.graph.schema import add_op, new_graph

GB = 1e9


def layers(n: int = 6, seconds: float = 0.1, nbytes: float = 0.2 * GB):
    """A chain of n ops on u1, each reading its own weight."""
    g = new_graph("layers")
    for i in range(n):
        add_op(g, f"a{i}", cost={"u0": 9.0, "u1": seconds}, weights={f"w{i}.weight": nbytes})
        if i:
            g.add_edge(f"a{i - 1}", f"a{i}", bytes=0)
    return g


def test_weights_that_do_not_fit_are_fetched_before_each_use_by_hand():
    # m1 holds 1 GB: 0.9 GB less two 0.2 GB buffers leaves room for w0 and w1; w2..w5 stay in m0 and
    # cross the 1 GB/s, 1 ms link (0.201 s each). The fetch for the next op starts with the current
    # one: a2's at a1's start (0.1) lands at 0.301, a3's (from 0.301) at 0.502, a4's at 0.703,
    # a5's at 0.904; each op then runs 0.1 s.
    g, platform = layers(), two_unit_dict()
    with pytest.raises(OutOfMemoryError, match=r"^memory 'm1': weights and other resident inputs need 1200000000"):
        hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u1"})
    r = hetsim.simulate(g, platform, "single", scheduler_options={"unit": "u1"}, sim={"memory_policy": "offload"})
    starts = [round(o.start_s, 9) for o in r.trace.ops]
    assert starts == [0.0, 0.1, 0.301, 0.502, 0.703, 0.904]
    assert r.makespan_s == pytest.approx(1.004)
    assert [(t.src_op, t.src_memory, t.dst_memory) for t in r.trace.transfers] == [
        (f"weight:w{i}.weight", "m0", "m1") for i in range(2, 6)]
    assert r.peak_memory_bytes["m1"] <= 0.4 * GB + 2 * 0.2 * GB  # two resident, at most two buffers
    assert r.peak_memory_bytes["m0"] == pytest.approx(0.8 * GB)


def test_long_ops_hide_the_fetches():
    g = layers(seconds=1.0)
    r = hetsim.simulate(g, two_unit_dict(), "single", scheduler_options={"unit": "u1"},
                        sim={"memory_policy": "offload"})
    assert r.makespan_s == pytest.approx(6.0)  # each fetch (0.201 s) runs during the previous op


def test_nowhere_to_offload_is_a_clear_error():
    with pytest.raises(OutOfMemoryError, match=r"^memory 'm1': 1200000000 bytes \(1.20 GB\) of weights do not "
                                               r"fit, expected another memory linked to it with room"):
        hetsim.simulate(layers(), two_unit_dict(capacity="0.5 GB"), "single", scheduler_options={"unit": "u1"},
                        sim={"memory_policy": "offload"})


def test_online_policies_refuse_offloading():
    with pytest.raises(ScenarioError, match=r"^sim.memory_policy: got 'offload' with online policy 'online_eft'"):
        hetsim.simulate(layers(), two_unit_dict(), "online_eft", sim={"memory_policy": "offload"})
