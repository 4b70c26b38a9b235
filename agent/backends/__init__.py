"""Model backends: an OpenAI-compatible HTTP client and the local worker."""
