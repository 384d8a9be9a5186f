"""The team template: adoption (``mlops init``), the environment chain's files, ``mlops template
update``, and scaffolding new models and datasets from ``templates/``."""
