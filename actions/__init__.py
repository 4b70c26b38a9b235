"""deskpilot's actions: the vocabulary, the screen, and the one executor of input (no Qt here)."""
