"""View changes after a heal, a stall and on slow disks (docs/cluster.md, finding N-c), in the
simulator's directed runs (pyggy/consensus/sim/heal.py): three replicas with the test
cluster's timing, one fault at a time, every safety invariant checked throughout.

Before the fix, a backup cut off for 8 s climbed five views alone and pulled the healthy pair
through them when healed, and with writes taking up to 400 ms (fsync on a loaded machine) the
group never elected a primary within 60 s (45-49 views): each replica restarted the view
change every status timeout, whatever the round still needed.
"""

from __future__ import annotations

import pytest
from pyggy.consensus.sim.heal import run

SEEDS = range(4)
SLOW = 40  # ticks: writes durable after up to 400 ms, 40 % of the view change status timeout


@pytest.mark.parametrize("seed", SEEDS)
def test_a_backup_cut_off_and_healed_costs_no_view_change(seed):
    r = run(seed, fault="isolate", who="backup", ticks=800)  # 8 s, 4 heartbeat timeouts
    assert r.start_views == 1 and r.views_during == 0, r
    assert r.cut_view == r.fault_view, r  # it never climbed alone
    assert r.views_after == 0 and r.settle_ticks is not None and r.settle_ticks <= 20, r


@pytest.mark.parametrize("seed", SEEDS)
def test_a_primary_cut_off_is_replaced_once_and_its_return_costs_nothing(seed):
    r = run(seed, fault="isolate", who="primary", ticks=800)
    assert r.views_during == 1, r
    assert r.views_after == 0 and r.settle_ticks is not None and r.settle_ticks <= 50, r


@pytest.mark.parametrize("who", ["primary", "backup"])
def test_a_stalled_loop_costs_at_most_the_failover(who):
    r = run(1, fault="stall", who=who, ticks=400)  # 4 s: twice the heartbeat timeout
    assert r.views_during == (1 if who == "primary" else 0), r
    assert r.views_after == 0 and r.settle_ticks is not None, r


@pytest.mark.parametrize("seed", SEEDS)
def test_slow_disks_elect_within_a_few_views(seed):
    r = run(seed, fault="isolate", who="primary", ticks=800, write_ticks=SLOW)
    assert r.start_ticks is not None and r.start_views <= 3, r
    assert 1 <= r.views_during <= 3, r
    assert r.views_after == 0 and r.settle_ticks is not None, r


@pytest.mark.parametrize("seed", SEEDS)
def test_slow_disks_and_a_stalled_primary(seed):
    r = run(seed, fault="stall", who="primary", ticks=400, write_ticks=SLOW)
    assert r.start_ticks is not None and r.start_views <= 3, r
    assert 1 <= r.views_during <= 3 and r.views_after == 0 and r.settle_ticks is not None, r
