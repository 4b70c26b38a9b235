"""deskpilot's agent: prompt, protocol, backends, approval, recording and the loop (no Qt here)."""
