"""Ray Tune experiments of tracked training runs (sweeps and regressions share them): the runner, ASHA
that survives a resume, the ledger of a sweep's own state, one-line progress."""
