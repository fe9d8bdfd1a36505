"""The registered benchmark suites, one module per family (see :data:`gradfree.experiments.suite.SUITE_MODULES`)."""
