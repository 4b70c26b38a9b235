"""Child process for the memory figures: one good request, then one to a hostile endpoint.

`python -m tests.faults.memory_probe URL chat|models TIMEOUT_S` prints one JSON line: the error,
the time it took, and the resident memory before the hostile request and its peak during it
(VmRSS, VmHWM after a reset; KiB).
"""

from __future__ import annotations

import json
import resource
import sys
import time

from agent.backends.base import BackendError, ChatMessage
from agent.backends.openai_compat import OpenAIBackend

MSGS = [ChatMessage("system", ("sys",)), ChatMessage("user", ("look",))]
TOOLS = [{"type": "function", "function": {"name": "computer_use", "parameters": {}}}]


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> None:
    """Start the peak (VmHWM) again from the current resident size (Linux clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def main() -> None:
    """Warm up with a good answer (imports, pools), then meet the hostile reply."""
    url, what, timeout_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    backend = OpenAIBackend(url, "m", timeout_s=timeout_s)
    backend.complete(MSGS, TOOLS)
    # The imports' transient peak would hide the request's own: measure from here.
    reset_peak()
    before = status_kib("VmRSS")
    start = time.monotonic()
    error: str | None = None
    try:
        if what == "models":
            backend.list_models()
        else:
            backend.complete(MSGS, TOOLS)
    except BackendError as exc:
        error = str(exc)
    took = time.monotonic() - start
    peak = status_kib("VmHWM")
    print(json.dumps({"error": error, "took_s": took, "before_kib": before, "peak_kib": peak}))


if __name__ == "__main__":
    main()
