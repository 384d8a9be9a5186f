"""Building a definition's pipeline (``pipelines.core.estimators``): its errors, and the trust
rules that keep ``estimator.path`` from running any code but an estimator's."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipelines.core.definitions import load_model
from pipelines.core.errors import DefinitionError
from pipelines.core.estimators import build_estimator, build_pipeline

pytestmark = pytest.mark.code


# --- estimators ---------------------------------------------------------------------------


def _model(repo: Path, overrides: dict[str, Any]):
    return load_model(repo / "models", repo / "data", "penguins", overrides)


@pytest.mark.parametrize("name", ["penguins", "seattle_weather"])
def test_example_models_build_a_pipeline(repo, name):
    pipeline = build_pipeline(load_model(repo / "models", repo / "data", name))

    assert [step for step, _ in pipeline.steps] == ["preprocess", "estimator"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"estimator.path": "no_such_package.Forest"}, "estimator.path"),
        ({"estimator.path": "sklearn.ensemble.NoSuchForest"}, "estimator.path"),
        ({"estimator.path": "os.system"}, "estimator.path"),
        ({"estimator.path": "sklearn.ensemble.RandomForestRegressor"}, "estimator.path"),
        ({"estimator.params.no_such_param": 1}, "estimator.params"),
        ({"estimator.params.n_estimators": -5}, "estimator.params"),
        ({"estimator.params.criterion": "chaos"}, "estimator.params"),
    ],
    ids=[
        "unknown-module",
        "unknown-class",
        "not-an-estimator",
        "regressor-for-classification",
        "unknown-param",
        "negative-param",
        "bad-choice-param",
    ],
)
def test_unbuildable_estimator_is_a_definition_error_naming_the_field(repo, overrides, field):
    model = _model(repo, overrides)

    with pytest.raises(DefinitionError) as info:
        build_pipeline(model)

    assert info.value.field == field
    assert info.value.file == str(model.path)


def test_classifier_for_a_regression_task_is_rejected(repo):
    model = load_model(
        repo / "models",
        repo / "data",
        "seattle_weather",
        {"estimator": {"path": "sklearn.ensemble.RandomForestClassifier"}},
    )

    with pytest.raises(DefinitionError) as info:
        build_pipeline(model)

    assert info.value.field == "estimator.path"
    assert "classifier but task is regression" in info.value.message


def test_estimator_without_random_state_gets_the_split_seed(repo):
    params = {"n_estimators": 5}
    model = _model(repo, {"estimator.params": params, "split.seed": 123})

    estimator = build_pipeline(model).named_steps["estimator"]

    assert estimator.get_params()["random_state"] == 123


# --- trust: estimator.path reaches only estimators ------------------------------------------


def _build(repo: Path, path: str, params: dict[str, object] | None = None) -> object:
    overrides: dict[str, object] = {"estimator.path": path, "estimator.params": params or {}}
    return build_estimator(load_model(repo / "models", repo / "data", "penguins", overrides))


def test_the_projects_own_commands_are_out_of_reach(repo: Path) -> None:
    # A CLI command would write a model folder if it were called.
    params = {"name": "pwned", "dataset": "penguins", "task": "classification"}
    with pytest.raises(DefinitionError, match="outside the estimator packages") as caught:
        _build(repo, "pipelines.cli.definitions.new_model", params)
    assert caught.value.field == "estimator.path"
    assert not (repo / "models" / "pwned").exists()


def test_a_function_of_an_allowed_package_that_is_not_marked_is_never_called(
    repo: Path, tmp_path: Path
) -> None:
    written = tmp_path / "written.svm"
    params = {"X": [[1.0]], "y": [1], "f": str(written)}
    with pytest.raises(DefinitionError, match="estimator_factory"):
        _build(repo, "sklearn.datasets.dump_svmlight_file", params)
    assert not written.exists()


def test_a_module_outside_the_estimator_packages_is_not_even_imported(repo: Path) -> None:
    # `this` prints the Zen of Python when imported: the check must come before any import.
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pipelines.core.definitions import load_model
        from pipelines.core.errors import DefinitionError
        from pipelines.core.estimators import build_estimator
        repo = Path({str(repo)!r})
        overrides = {{"estimator.path": "this.x"}}
        model = load_model(repo / "models", repo / "data", "penguins", overrides)
        try:
            build_estimator(model)
        except DefinitionError as exc:
            print("refused:", exc.render())
        assert "this" not in sys.modules, "the module was imported"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "outside the estimator packages" in result.stdout
    assert "Beautiful is better than ugly" not in result.stdout


def test_a_marked_factory_in_a_package_the_team_allows_builds_the_estimator(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "team_models"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from sklearn.ensemble import RandomForestClassifier
            # The public path the README gives teams, kept across the move to subpackages.
            from pipelines.estimators import estimator_factory

            @estimator_factory
            def small_forest(trees):
                return RandomForestClassifier(n_estimators=trees)

            def unmarked(trees):
                return RandomForestClassifier(n_estimators=trees)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DefinitionError, match="outside the estimator packages"):
        _build(repo, "team_models.small_forest", {"trees": 3})
    monkeypatch.setenv("MLOPS_ESTIMATOR_PACKAGES", "team_models")
    assert _build(repo, "team_models.small_forest", {"trees": 3}).n_estimators == 3
    with pytest.raises(DefinitionError, match="estimator_factory"):
        _build(repo, "team_models.unmarked", {"trees": 3})
