"""The parameter model: typed, ranged parameters and per-frame snapshots (no I/O, no torch)."""
