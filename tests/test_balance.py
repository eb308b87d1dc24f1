"""Connection balance between serving workers (service/balance.py), on its shared memory."""

from __future__ import annotations

import os
import subprocess
import sys

from service.balance import MARGIN, ConnectionBalance


def _with_other_worker(balance: ConnectionBalance, pid: int, held: int) -> None:
    """Register a second live worker holding `held` connections, as its own claim would."""
    other = 1 - balance.slot
    balance.pids[other], balance.conns[other] = pid, held
    balance.used.value = 2


def test_a_worker_holding_more_connections_than_its_share_sheds_one():
    balance = ConnectionBalance()
    balance.claim()
    _with_other_worker(balance, os.getppid(), held=1)
    assert balance.should_shed(1 + MARGIN)  # 3 against 1: close one, let the other take it
    assert not balance.should_shed(MARGIN)  # 2 against 1: as even as 3 connections get
    _with_other_worker(balance, os.getppid(), held=2)
    assert not balance.should_shed(2)  # an even split is never disturbed


def test_a_lone_or_dead_peer_never_makes_a_worker_shed():
    balance = ConnectionBalance()
    assert not balance.should_shed(10)  # before claiming a slot (not a gunicorn worker)
    balance.claim()
    assert not balance.should_shed(10)  # the only worker: nowhere else to go
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    _with_other_worker(balance, child.pid, held=0)
    balance.release(child.pid)  # the master saw it exit
    assert not balance.should_shed(10)
