"""``python -m agent.backends.worker``: the worker process's entry point."""

from agent.backends.worker.serve import main

raise SystemExit(main())
