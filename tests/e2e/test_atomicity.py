"""Promotion, rollback and registration are all or nothing: a failure midway changes nothing."""

from __future__ import annotations

import pytest

from pipelines.core.errors import RegistryError
from pipelines.core.registry import aliases_of
from pipelines.stages import promote as promote_module
from pipelines.stages import register as register_module
from pipelines.stages.promote import promote, rollback
from pipelines.stages.run import run_model

pytestmark = pytest.mark.e2e


def _pins(settings) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(settings.environments_dir.glob("*.yaml"))}


def _versions(client, name: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))


@pytest.fixture
def champion(client, settings):
    """penguins v1 registered and running in staging and prod."""
    outcome = run_model(client, settings, "penguins", promote_to=["staging", "prod"])
    assert outcome.version == "1", outcome.rejected
    return outcome


def _fail_writing_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(promote_module, "save_environment", refuse)


def test_promotion_whose_pins_file_cannot_be_written_restores_every_alias(
    client, settings, champion, monkeypatch
):
    second = run_model(
        client, settings, "penguins", overrides={"estimator.params.n_estimators": 60}
    )
    assert second.version == "2", second.rejected
    aliases, pins = aliases_of(client, "penguins"), _pins(settings)
    _fail_writing_pins(monkeypatch)

    with pytest.raises(OSError, match="disk full"):
        promote(client, settings, "penguins", "staging")

    assert aliases_of(client, "penguins") == aliases
    assert _pins(settings) == pins


def test_rollback_whose_pins_file_cannot_be_written_restores_champion_and_pins(
    client, settings, champion, monkeypatch
):
    run_model(
        client,
        settings,
        "penguins",
        overrides={"estimator.params.n_estimators": 60},
        promote_to=["staging", "prod"],
    )
    aliases, pins = aliases_of(client, "penguins"), _pins(settings)
    assert aliases["champion"] == "2"
    _fail_writing_pins(monkeypatch)

    with pytest.raises(OSError):
        rollback(client, settings, "penguins", "prod")

    assert aliases_of(client, "penguins") == aliases
    assert _pins(settings) == pins


def test_registration_that_fails_after_creating_the_version_deletes_it(
    client, settings, champion, monkeypatch
):
    second = run_model(
        client, settings, "penguins", overrides={"estimator.params.n_estimators": 60}
    )
    before_versions, before_aliases = _versions(client, "penguins"), aliases_of(client, "penguins")
    candidate_run = client.search_runs(
        [client.get_experiment_by_name("mlops/penguins").experiment_id],
        filter_string="tags.`mlops.gates.passed` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]
    client.delete_tag(candidate_run.info.run_id, "mlops.registered_version")

    def refuse_alias(*_args: object, **_kwargs: object) -> None:
        raise RegistryError("alias service down")

    monkeypatch.setattr(client, "set_registered_model_alias", refuse_alias)
    with pytest.raises(RegistryError, match="alias service down"):
        register_module.register(client, settings, "penguins", candidate_run.info.run_id)

    monkeypatch.undo()
    assert second.version in before_versions
    assert _versions(client, "penguins") == before_versions
    assert aliases_of(client, "penguins") == before_aliases
