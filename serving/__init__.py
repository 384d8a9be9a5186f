"""The model server: one image, one contract (SageMaker's), on SageMaker, Kubernetes or a laptop.

``/ping``, ``/invocations`` and ``/metrics`` on port 8080; the model is loaded once from an
MLflow model folder (``/opt/ml/model``), a registry URI or a local path. See ``serving.app``.
"""
