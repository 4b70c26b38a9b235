"""The local model worker process: the only code in deskpilot that imports torch or transformers.

Run as ``python -m agent.backends.worker`` (LocalBackend in agent/backends/local.py does); it
speaks agent/backends/worker_wire.py over stdin/stdout and listens on no network port.
serve.py is the process (request loop), engine.py turns a request into an answer,
prefix_cache.py keeps the model's state between prompts, processor.py builds the chat template
and image inputs, hub.py finds or downloads the weights, think_split.py separates thinking from
the answer. torch and transformers are imported inside functions, so a missing install becomes
a one-line message instead of a crash at start.
"""
