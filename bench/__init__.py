"""Benchmarks run against real services: `bin/bench NAME [args]` runs bench/NAME.py."""
