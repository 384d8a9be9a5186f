"""The ``mlops`` command line (``pipelines.cli.main``): one module per group of commands."""
