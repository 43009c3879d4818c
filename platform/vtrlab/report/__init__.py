"""Comparison reports: the best trial per (benchmark, method) across sweeps, the papers' reported numbers
beside them, a Pareto plot and learning curves, written as terminal, Markdown, HTML and JSON and logged to
the sweeps' parent runs in MLflow."""
