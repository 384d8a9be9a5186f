"""A model definition names an estimator; it must never make the pipeline run other code."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.core.definitions import load_model
from pipelines.core.errors import DefinitionError
from pipelines.core.estimators import build_estimator

pytestmark = pytest.mark.code


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
            from pipelines.core.estimators import estimator_factory

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
