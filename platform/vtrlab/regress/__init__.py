"""Scheduled benchmark regressions (`vtrlab regress`): a suite of fixed configurations retrained over seeds,
or the registry's champions re-evaluated, compared with the champions' recorded values and the suite's
previous run; a report (Markdown, HTML, PNG) and an MLflow run per regression. Public API::

    load_suite(path) -> Suite                       # vtrlab.regress.suite
    RegressionRunner(suite_path, address=None, champions_only=False, out=None).run() -> RegressionOutcome
                                                    # vtrlab.regress.runner
"""
