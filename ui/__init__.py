"""deskpilot's Qt user interface."""
