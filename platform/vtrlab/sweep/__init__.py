"""Sweeps: a YAML spec of methods x benchmarks x search spaces, run with Ray Tune, Optuna and ASHA."""
