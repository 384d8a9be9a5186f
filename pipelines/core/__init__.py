"""The contracts every part may import: definitions, datasets, pins, fingerprints, settings,
errors, conventions, tag names, scoring, estimators and the MLflow registry adapter.

Nothing here imports the rest of the repository (``make lint`` checks it): ``serving``,
``monitoring`` and ``infra`` build on these modules alone.
"""
