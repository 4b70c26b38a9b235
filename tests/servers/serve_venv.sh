#!/usr/bin/env bash
# The venv that tests/servers runs `transformers serve` from: it needs torchvision for Qwen 3.5's
# processor, and torchvision installs only beside a matching torch build (the project's CPU
# torch 2.13 is not one). About 4 minutes and 5.7 GB on 2 cores; done once per DIR.
# Usage: tests/servers/serve_venv.sh DIR    then DESKPILOT_SERVE_PYTHON=DIR/bin/python
set -euo pipefail
dir=${1:?usage: tests/servers/serve_venv.sh DIR}
if [ ! -f "$dir/.installed" ]; then
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 "transformers[serving]>=5.2,<6"
    touch "$dir/.installed"
fi
echo "$dir/bin/python"
