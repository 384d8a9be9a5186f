"""The promotion chain rule: what an ordered list of environments means, in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.core.environment_chain import (
    STANDARD_ENVIRONMENTS,
    Chain,
    is_generated_description,
    receiving_environment,
    write_fresh_environments,
)
from pipelines.core.pins import load_environment

pytestmark = pytest.mark.code


@pytest.mark.parametrize(
    ("names", "scratch", "first", "upstream_of_production"),
    [
        (("prod",), None, "prod", None),
        (("dev", "prod"), None, "dev", "dev"),
        (("dev", "staging", "prod"), "dev", "staging", "staging"),
        (("qa", "staging", "production"), "qa", "staging", "staging"),
        (("dev", "staging", "canary", "prod"), "dev", "staging", "canary"),
    ],
)
def test_the_chain_gives_each_environment_its_role(
    names: tuple[str, ...], scratch: str | None, first: str, upstream_of_production: str | None
) -> None:
    chain = Chain(names)

    assert (chain.scratch, chain.first, chain.production) == (scratch, first, names[-1])
    assert chain.promote_from(chain.production) == upstream_of_production
    assert chain.promote_from(chain.first) is None
    assert all(chain.settings(n)["champion"] == (n == names[-1]) for n in names)
    assert all(is_generated_description(chain.description(n)) for n in names)


def test_the_standard_chain_is_the_templates_own_environments(tmp_path: Path) -> None:
    """dev, staging and prod written from the rule are the pins the template ships, so adopting
    with the default list leaves them byte for byte."""
    write_fresh_environments(tmp_path, Chain(STANDARD_ENVIRONMENTS))
    for name in STANDARD_ENVIRONMENTS:
        written = load_environment(tmp_path, name)
        assert written.promote_from == ("staging" if name == "prod" else None), name
        assert written.requires_approval == (name == "prod"), name
    assert load_environment(tmp_path, "dev").description == (
        "Scratch environment for trying a registered version before it is proposed for staging."
    )
    assert receiving_environment(tmp_path) == "staging"


@pytest.mark.parametrize(
    ("names", "receiving"),
    [(("prod",), "prod"), (("dev", "prod"), "dev"), (("qa", "staging", "production"), "staging")],
)
def test_the_receiving_environment_is_read_back_from_the_pins(
    tmp_path: Path, names: tuple[str, ...], receiving: str
) -> None:
    write_fresh_environments(tmp_path, Chain(names))

    assert receiving_environment(tmp_path) == receiving


def test_a_teams_own_description_is_not_mistaken_for_a_generated_one() -> None:
    assert not is_generated_description("Our load-test stack; ask #ml-platform before using it.")
