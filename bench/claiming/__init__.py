"""The parts of `bin/bench claims`: claimer processes (modes a, b) and HTTP agents (c)."""
