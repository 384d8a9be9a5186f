"""Pins (``pipelines.core.pins``): the per-environment record of which version runs where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.core.errors import DefinitionError
from pipelines.core.pins import (
    HISTORY_LIMIT,
    Environment,
    Pin,
    PinRecord,
    advance,
    load_environment,
    render,
    save_environment,
    step_back,
    with_pin,
)

pytestmark = pytest.mark.code


# --- pins ---------------------------------------------------------------------------------


def _record(version: int) -> PinRecord:
    return PinRecord(
        version=str(version),
        run_id=f"run{version}",
        model_uri=f"models:/penguins/{version}",
        fingerprint=f"sha256:{version:064x}",
        data_fingerprint=f"sha256:{0:064x}",
        git_commit=f"{version:040x}",
        promoted_at=f"2025-01-{version % 28 + 1:02d}T00:00:00+00:00",
        promoted_by="ci",
    )


def _promote(*versions: int) -> Pin:
    pin: Pin | None = None
    for version in versions:
        pin = advance(pin, _record(version))
    assert pin is not None
    return pin


def test_first_promotion_has_no_history():
    pin = advance(None, _record(1))

    assert pin.record() == _record(1)
    assert pin.history == []


def test_promotion_moves_the_current_pin_onto_the_history():
    pin = _promote(1, 2, 3)

    assert pin.version == "3"
    assert [r.version for r in pin.history] == ["1", "2"]
    assert pin.history[-1] == _record(2)


def test_step_back_restores_the_previous_pin_and_its_history():
    pin = step_back(_promote(1, 2, 3))

    assert pin.record() == _record(2)
    assert [r.version for r in pin.history] == ["1"]
    assert step_back(pin) == advance(None, _record(1))


def test_history_is_capped_at_the_limit_keeping_the_most_recent():
    total = HISTORY_LIMIT + 5
    pin = _promote(*range(1, total + 1))

    assert len(pin.history) == HISTORY_LIMIT
    assert [r.version for r in pin.history] == [str(v) for v in range(total - HISTORY_LIMIT, total)]


def _environment(name: str = "staging", **fields: Any) -> Environment:
    pin = _promote(1, 2)
    return Environment(
        environment=name,
        description="test environment",
        models={"penguins": pin},
        **fields,
    )


def test_saved_environment_loads_back_unchanged(tmp_path):
    environment = _environment("prod", promote_from="staging", champion=True)

    path = save_environment(tmp_path, environment)

    assert path == tmp_path / "prod.yaml"
    assert load_environment(tmp_path, "prod") == environment
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=../schemas/environment.schema.json"
    )


def test_rendered_environment_is_plain_yaml_with_the_pins_in_order(tmp_path):
    environment = _environment()
    environment = with_pin(environment, "alpha", advance(None, _record(7)))

    data = yaml.safe_load(render(environment))

    assert list(data["models"]) == ["alpha", "penguins"]
    assert data["models"]["penguins"]["history"][0]["version"] == "1"


def test_with_pin_none_removes_the_model(tmp_path):
    environment = with_pin(_environment(), "penguins", None)

    assert environment.models == {}


COMMITTED_ENVIRONMENTS = Path(__file__).resolve().parents[3] / "environments"


@pytest.mark.parametrize("name", sorted(p.stem for p in COMMITTED_ENVIRONMENTS.glob("*.yaml")))
def test_committed_environment_files_load(name):
    assert load_environment(COMMITTED_ENVIRONMENTS, name).environment == name


def test_committed_environments_form_one_chain_ending_in_production():
    names = sorted(p.stem for p in COMMITTED_ENVIRONMENTS.glob("*.yaml"))
    environments = [load_environment(COMMITTED_ENVIRONMENTS, n) for n in names]

    champions = [e for e in environments if e.champion]
    assert len(champions) == 1 and champions[0].requires_approval, "one production"
    assert all(e.promote_from in (None, *names) for e in environments)


def test_environment_whose_name_differs_from_its_file_is_rejected(tmp_path):
    save_environment(tmp_path, _environment("staging"))
    (tmp_path / "staging.yaml").rename(tmp_path / "qa.yaml")

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "qa")

    assert info.value.field == "environment"
    assert info.value.file == str(tmp_path / "qa.yaml")


def test_environment_promoting_from_itself_is_rejected(tmp_path):
    save_environment(tmp_path, _environment("staging", promote_from="staging"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "staging")

    assert info.value.field == "promote_from"
    assert info.value.file == str(tmp_path / "staging.yaml")


def test_unknown_environment_lists_the_known_ones(tmp_path):
    save_environment(tmp_path, _environment("staging"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "prod")

    assert "staging" in info.value.message


def test_pin_with_a_non_numeric_version_is_rejected(tmp_path):
    path = save_environment(tmp_path, _environment("staging"))
    path.write_text(path.read_text(encoding="utf-8").replace("version: '2'", "version: latest"))

    with pytest.raises(DefinitionError) as info:
        load_environment(tmp_path, "staging")

    assert info.value.field == "models.penguins.version"
