"""Peak memory of a client process meeting each hostile endpoint (figures for reliability.md).

The client runs in its own process (tests/faults/memory_probe.py) so that its ru_maxrss is its
own; the hostile server runs here. Each attack may raise the peak by a few tens of MiB (the caps
are 1 MiB per line or event, 16 MiB per answer); the bound asserted is a generous 200 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.faults.helpers import HostileServer, answer
from tests.faults.test_cli_faults import ROOT
from tests.faults.test_hostile_endpoints import ATTACKS, GOOD, Attack

GROWTH_BOUND_MIB = 200
CASES = [Attack("good_answer", answer(GOOD), "")] + ATTACKS


@pytest.mark.parametrize("attack", CASES, ids=[a.name for a in CASES])
def test_peak_memory_under_a_hostile_stream_stays_bounded(attack: Attack) -> None:
    if attack.on_models:
        server = HostileServer([answer(GOOD)], models=attack.behaviour)
    else:
        server = HostileServer([answer(GOOD), attack.behaviour])
    try:
        cmd = [sys.executable, "-m", "tests.faults.memory_probe", server.url,
               "models" if attack.on_models else "chat", str(attack.timeout_s)]  # fmt: skip
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    growth_mib = (result["peak_kib"] - result["before_kib"]) / 1024
    print(
        f"\n{attack.name}: peak {growth_mib:+.1f} MiB (to {result['peak_kib'] / 1024:.0f} MiB) "
        f"in {result['took_s']:.2f} s; {result['error']}"
    )
    if attack.phrase:
        assert attack.phrase.replace("URL", server.url) in (result["error"] or "")
    else:
        assert result["error"] is None
    assert growth_mib < GROWTH_BOUND_MIB
