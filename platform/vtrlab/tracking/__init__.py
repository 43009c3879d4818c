"""MLflow tracking: where runs go, per-epoch logging that survives restarts, artifacts and the registry."""
