"""The MLOps template's pipeline: declarative model definitions in, gated and promoted models out.

Nothing here does work at import time: the CLI must answer ``--help`` without loading MLflow,
pandas or scikit-learn, so every stage imports its heavy libraries inside its functions.
"""

__version__ = "0.1.0"
