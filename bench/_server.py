"""`python -m bench._server N`: a scripted Qwen 3.5 server answering N mouse moves instantly."""

from __future__ import annotations

import sys

from bench._x11 import ROOT  # noqa: F401  (puts the repo on sys.path)
from tests.support.scripted_server import CountOnly, Reply, ScriptedServer, xml_call


def main() -> None:
    """Print the /v1 URL, serve until stdin closes."""
    steps = int(sys.argv[1])
    points = ([300, 400], [600, 500])
    # The whole reply in one chunk: the model is instant, only the hand-over is measured.
    script: list[Reply] = [
        Reply(xml_call(action="mouse_move", coordinate=points[i % 2]), chunk_chars=1 << 16)
        for i in range(steps)
    ]
    server = ScriptedServer(list(script), requests=CountOnly())
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()


if __name__ == "__main__":
    main()
