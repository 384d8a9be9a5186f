"""The tag and artifact names (``pipelines.core.tags``) are a stored format: runs and versions
registered by an earlier release are read by this one, so a name never changes silently."""

from __future__ import annotations

import pytest

from pipelines.core import tags

pytestmark = pytest.mark.code

# As written by every release so far; renaming one orphans the records already in registries.
RECORDED = {
    "MODEL_TAG": "mlops.model",
    "TASK_TAG": "mlops.task",
    "DATASET_TAG": "mlops.dataset",
    "GIT_COMMIT_TAG": "mlops.git_commit",
    "PIPELINE_VERSION_TAG": "mlops.pipeline_version",
    "OWNER_TAG": "mlops.owner",
    "OVERRIDES_TAG": "mlops.overrides",
    "MODEL_URI_TAG": "mlops.model_uri",
    "PRIMARY_METRIC_TAG": "mlops.primary_metric",
    "FINGERPRINT_TAG": "mlops.fingerprint",
    "DEFINITION_FINGERPRINT_TAG": "mlops.fingerprint.definition",
    "DATASET_DEFINITION_FINGERPRINT_TAG": "mlops.fingerprint.dataset_definition",
    "DATA_FINGERPRINT_TAG": "mlops.fingerprint.data",
    "CODE_FINGERPRINT_TAG": "mlops.fingerprint.code",
    "TRAIN_STAGE_TAG": "mlops.stage.train",
    "EVALUATE_STAGE_TAG": "mlops.stage.evaluate",
    "GATE_STAGE_TAG": "mlops.stage.gate",
    "STAGE_DONE": "done",
    "GATES_PASSED_TAG": "mlops.gates.passed",
    "CHAMPION_VERSION_TAG": "mlops.gates.champion_version",
    "GATE_TAG_PREFIX": "mlops.gate",
    "RUN_ID_TAG": "mlops.run_id",
    "METRIC_TAG_PREFIX": "mlops.metric.",
    "REGISTERED_VERSION_TAG": "mlops.registered_version",
    "SAGEMAKER_MODEL_DATA_TAG": "mlops.sagemaker.model_data",
    "SAGEMAKER_TRAINING_JOB_TAG": "mlops.sagemaker.training_job",
    "SAGEMAKER_TRAINING_IMAGE_TAG": "mlops.sagemaker.training_image",
    "SPLIT_ARTIFACT": "split.json",
    "EVALUATION_ARTIFACT": "evaluation.json",
    "GATES_ARTIFACT": "gates.json",
    "CARD_FILE": "model_card.md",
    "CARD_ARTIFACT_DIR": "card",
    "VALIDATION_ARTIFACT": "validation.json",
    "MODEL_ARTIFACT": "model",
    "MODEL_DEFINITION_ARTIFACT": "definition/model.yaml",
    "DATASET_DEFINITION_ARTIFACT": "definition/dataset.yaml",
}


def test_every_name_is_the_one_earlier_releases_recorded() -> None:
    defined = {k: v for k, v in vars(tags).items() if k.isupper()}
    assert defined == RECORDED


def test_gate_and_package_tags_keep_their_shapes() -> None:
    assert tags.gate_tag("threshold:accuracy") == "mlops.gate.threshold.accuracy"
    assert tags.gate_tag("champion") == "mlops.gate.champion"
    assert tags.model_package_tag("prod") == "mlops.sagemaker.prod.model_package_arn"


def test_no_two_names_share_a_value() -> None:
    values = [v for k, v in RECORDED.items() if k != "STAGE_DONE"]
    assert len(values) == len(set(values))
