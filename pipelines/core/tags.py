"""Every ``mlops.*`` MLflow tag and every artifact name the stages write and read.

A run or a model version is a record other parts read later (the PR report, ``mlops status``,
the monitor's reference, the SageMaker package), so each name is defined here once: a typo in
one reader would otherwise be a silent ``None``, not an error.
"""

from __future__ import annotations

# --- on a training run, set by ``train`` ---------------------------------------------------
MODEL_TAG = "mlops.model"  # the model's name: how a model's runs are found
TASK_TAG = "mlops.task"
DATASET_TAG = "mlops.dataset"
GIT_COMMIT_TAG = "mlops.git_commit"
PIPELINE_VERSION_TAG = "mlops.pipeline_version"
OWNER_TAG = "mlops.owner"
OVERRIDES_TAG = "mlops.overrides"  # the --set overrides, as JSON
MODEL_URI_TAG = "mlops.model_uri"  # the logged MLflow model
PRIMARY_METRIC_TAG = "mlops.primary_metric"

# Fingerprints (``pipelines.core.fingerprints``): what a run was trained from.
FINGERPRINT_TAG = "mlops.fingerprint"  # the combined one; also the prefix of the others
DEFINITION_FINGERPRINT_TAG = "mlops.fingerprint.definition"
DATASET_DEFINITION_FINGERPRINT_TAG = "mlops.fingerprint.dataset_definition"
DATA_FINGERPRINT_TAG = "mlops.fingerprint.data"
CODE_FINGERPRINT_TAG = "mlops.fingerprint.code"

# --- stage progress on a run: each stage sets its tag to STAGE_DONE when it finished ---------
TRAIN_STAGE_TAG = "mlops.stage.train"
EVALUATE_STAGE_TAG = "mlops.stage.evaluate"
GATE_STAGE_TAG = "mlops.stage.gate"
STAGE_DONE = "done"

# --- gate verdicts on a run ----------------------------------------------------------------
GATES_PASSED_TAG = "mlops.gates.passed"  # "true" or "false"; ``register`` requires "true"
CHAMPION_VERSION_TAG = "mlops.gates.champion_version"
# Prefix of every gate tag: the per-gate verdicts (mlops.gate.<gate>) and mlops.gates.*.
GATE_TAG_PREFIX = "mlops.gate"


def gate_tag(gate: str) -> str:
    """The verdict tag of one gate (``threshold:accuracy`` -> ``mlops.gate.threshold.accuracy``)."""
    return f"{GATE_TAG_PREFIX}.{gate.replace(':', '.')}"


# --- on a registered model version, set by ``register`` --------------------------------------
RUN_ID_TAG = "mlops.run_id"
METRIC_TAG_PREFIX = "mlops.metric."  # mlops.metric.<name>: the held-out metrics
# On the run: the version it was registered as, so a run is never registered twice.
REGISTERED_VERSION_TAG = "mlops.registered_version"

# --- the SageMaker flow --------------------------------------------------------------------
SAGEMAKER_MODEL_DATA_TAG = "mlops.sagemaker.model_data"  # the model.tar.gz in S3
SAGEMAKER_TRAINING_JOB_TAG = "mlops.sagemaker.training_job"
# The image a training job trained in; its model package is served by that same image.
SAGEMAKER_TRAINING_IMAGE_TAG = "mlops.sagemaker.training_image"


def model_package_tag(environment: str) -> str:
    """The version tag holding the SageMaker model package registered for ``environment``."""
    return f"mlops.sagemaker.{environment}.model_package_arn"


# --- artifacts of a run ----------------------------------------------------------------------
SPLIT_ARTIFACT = "split.json"  # the row positions of the train/test split
EVALUATION_ARTIFACT = "evaluation.json"
GATES_ARTIFACT = "gates.json"
CARD_FILE = "model_card.md"
CARD_ARTIFACT_DIR = "card"  # the model card's plots
VALIDATION_ARTIFACT = "validation.json"  # the data validation report
MODEL_ARTIFACT = "model"  # the logged MLflow model
# The definition files the run was trained from, as they were.
MODEL_DEFINITION_ARTIFACT = "definition/model.yaml"
DATASET_DEFINITION_ARTIFACT = "definition/dataset.yaml"
