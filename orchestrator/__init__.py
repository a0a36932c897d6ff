"""The orchestrator: the group's clock and memory (trust, agent values, suggestion buffers)."""
