"""`mlops status` reads the pins from git even when this registry has never seen the version."""

from __future__ import annotations

import pytest

from pipelines.core.pins import in_promotion_order, list_environments, load_environment
from pipelines.core.settings import Settings
from pipelines.stages.run import run_model
from pipelines.stages.status import model_status

pytestmark = pytest.mark.e2e


def test_a_pin_unknown_to_this_registry_is_shown_with_the_pins_lineage(client, settings, tmp_path):
    run_model(client, settings, "penguins", promote_to=["staging"])
    elsewhere = Settings(root=settings.root, home=tmp_path / "other-state", tracking_uri=None)
    from pipelines.core.registry import connect

    other = connect(elsewhere)

    [status] = model_status(other, elsewhere, ["penguins"])

    assert status.pins["staging"] == "1"
    [version] = status.versions
    assert version["in_registry"] is False
    pin = load_environment(settings.environments_dir, "staging").models["penguins"]
    assert (version["run_id"], version["data_fingerprint"]) == (pin.run_id, pin.data_fingerprint)


def test_environments_are_listed_in_the_order_versions_travel_through_them(settings):
    names = list_environments(settings.environments_dir)
    environments = [load_environment(settings.environments_dir, n) for n in names]

    ordered = [e.environment for e in in_promotion_order(environments)]

    assert ordered.index("staging") < ordered.index("prod")
