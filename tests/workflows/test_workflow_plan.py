"""`mlops plan`: which models a change retrains, on throwaway git repositories."""

from __future__ import annotations

import json

import pytest
from workflow_helpers import Copy, mlops

from pipelines.core.datasets import load_dataset_by_name, update_fingerprint
from pipelines.gitops.plan import matches, plan_change, plan_selected, retraining_schedules

pytestmark = pytest.mark.workflows


def affected(copy: Copy) -> dict[str, list[str]]:
    result = plan_change(copy.root, copy.base)
    return {m.model: m.reasons for m in result.models if m.affected}


def change_penguins_data(copy: Copy) -> None:
    csv = copy.root / "data" / "penguins" / "penguins.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    csv.write_text("".join(lines[:-1]), encoding="utf-8")  # one row fewer


def test_unchanged_tree_retrains_nothing(copy: Copy) -> None:
    assert affected(copy) == {}


def test_readme_only_change_retrains_nothing(copy: Copy) -> None:
    (copy.root / "README.md").write_text("# changed\n", encoding="utf-8")
    copy.commit("docs")
    result = plan_change(copy.root, copy.base)
    assert result.affected == []
    assert (result.infra, result.image) == (False, False)
    assert result.changed_files == ["README.md"]


def test_reformatting_a_definition_retrains_nothing(copy: Copy) -> None:
    # The fingerprint is of the validated definition, so layout and comments are not changes.
    copy.edit("models/penguins/model.yaml", "task: classification", "task: classification  # c")
    copy.commit("comment")
    assert affected(copy) == {}


def test_definition_change_retrains_only_that_model(copy: Copy) -> None:
    copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 5")
    copy.commit("shallower")
    assert affected(copy) == {"penguins": ["model definition changed"]}


def test_uncommitted_changes_count(copy: Copy) -> None:
    copy.edit("models/seattle_weather/model.yaml", "max_iter: 200", "max_iter: 100")
    assert list(affected(copy)) == ["seattle_weather"]


def test_dataset_change_retrains_every_model_that_reads_it(copy: Copy) -> None:
    change_penguins_data(copy)
    update_fingerprint(load_dataset_by_name(copy.root / "data", "penguins"))
    copy.commit("one row fewer")
    reasons = affected(copy)
    assert list(reasons) == ["penguins"]
    assert any(r.startswith("data changed (penguins") for r in reasons["penguins"])


def test_data_file_changed_without_its_fingerprint_is_still_planned(copy: Copy) -> None:
    # Validation will then fail the pull request, which is the point: the change is visible.
    change_penguins_data(copy)
    copy.commit("silent data change")
    reasons = affected(copy)
    assert list(reasons) == ["penguins"]
    assert "declared fingerprint did not" in reasons["penguins"][0]


def test_training_code_change_retrains_every_model(copy: Copy) -> None:
    train = copy.root / "pipelines" / "stages" / "train.py"
    train.write_text(train.read_text(encoding="utf-8") + "\n# a change\n", encoding="utf-8")
    copy.commit("code")
    result = plan_change(copy.root, copy.base)
    assert result.affected == ["penguins", "seattle_weather"]
    assert all(m.reasons == ["training code changed (pipelines/)"] for m in result.models)
    assert result.image, "the serving image installs pipelines/ too"


def test_new_and_removed_models(copy: Copy) -> None:
    source = copy.root / "models" / "penguins" / "model.yaml"
    target = copy.root / "models" / "penguins2" / "model.yaml"
    target.parent.mkdir()
    target.write_text(
        source.read_text(encoding="utf-8").replace("name: penguins", "name: penguins2"),
        encoding="utf-8",
    )
    (copy.root / "models" / "seattle_weather" / "model.yaml").unlink()
    copy.commit("add and remove")
    result = plan_change(copy.root, copy.base)
    assert result.affected == ["penguins2"]
    assert result.removed_models == ["seattle_weather"]


def test_infra_and_pins_changes_need_a_preview_not_training(copy: Copy) -> None:
    (copy.root / "Pulumi.yaml").write_text("name: mlops\nruntime: python\n", encoding="utf-8")
    copy.commit("infra")
    result = plan_change(copy.root, copy.base)
    assert (result.affected, result.infra, result.image) == ([], True, False)
    assert result.pins is False, "only a pins file's change makes main reconcile the registry"


def test_a_merged_pins_change_asks_main_to_sync_the_registry(copy: Copy) -> None:
    pins = sorted((copy.root / "environments").glob("*.yaml"))[0]
    pins.write_text(pins.read_text(encoding="utf-8") + "# reviewed\n", encoding="utf-8")
    copy.commit("pins")
    output = copy.root.parent / "github_output"
    done = mlops(copy.root, "plan", "--base", "main", "--github-output", str(output))
    assert done.returncode == 0, done.stderr
    assert "pins changed: yes" in done.stdout
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert (lines["pins"], lines["infra"], lines["any"]) == ("true", "true", "false")


def test_path_classes() -> None:
    from pipelines.gitops.plan import IMAGE_PATTERNS, INFRA_PATTERNS

    assert matches("infra/components/artifact_store.py", INFRA_PATTERNS)
    assert matches("Pulumi.prod.yaml", INFRA_PATTERNS)
    assert matches("environments/prod.yaml", INFRA_PATTERNS)
    assert not matches("README.md", INFRA_PATTERNS + IMAGE_PATTERNS)
    assert matches("serving/Dockerfile", IMAGE_PATTERNS)


def test_cli_json_is_a_workflow_matrix_and_github_output(copy: Copy) -> None:
    copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 4")
    copy.commit("shallower")
    output = copy.root.parent / "github_output"
    done = mlops(copy.root, "plan", "--base", "main", "--json", "--github-output", str(output))
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["matrix"] == {"include": [{"model": "penguins"}]}
    assert data["any"] is True
    assert {m["model"]: m["reasons"] for m in data["models"]} == {
        "penguins": ["model definition changed"],
        "seattle_weather": ["unchanged"],
    }
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert json.loads(lines["matrix"]) == data["matrix"]
    assert (lines["any"], lines["infra"], lines["image"]) == ("true", "false", "false")
    assert lines["pins"] == "false"


def test_cli_rejects_a_bad_base_and_a_broken_definition(copy: Copy) -> None:
    done = mlops(copy.root, "plan", "--base", "no-such-ref")
    assert done.returncode == 2
    assert "--base" in done.stderr
    copy.edit("models/penguins/model.yaml", "max_depth: 6", "max_depth: 6\n  bogus: [")
    done = mlops(copy.root, "plan", "--base", "main")
    assert done.returncode == 2
    assert "models/penguins/model.yaml" in done.stderr


def test_retraining_selection_by_schedule_and_by_name(copy: Copy) -> None:
    schedules = retraining_schedules(copy.root)
    cron = schedules["seattle_weather"]
    assert plan_selected(copy.root, [], cron).affected == ["seattle_weather"]
    assert plan_selected(copy.root, ["penguins"], None).affected == ["penguins"]
    assert plan_selected(copy.root, [], "1 1 1 1 1").affected == []


def test_dispatched_model_name_is_checked(copy: Copy) -> None:
    # The name comes from a repository_dispatch payload: anything else is exit 2, not a job.
    done = mlops(copy.root, "plan", "--model", "penguins; rm -rf /", "--json")
    assert done.returncode == 2
    assert "unknown model" in done.stderr
    assert mlops(copy.root, "plan", "--model", "", "--schedule", "").returncode == 2


def test_a_push_with_no_previous_head_plans_every_model(copy: Copy) -> None:
    result = plan_change(copy.root, "0" * 40)  # github.event.before of a new branch
    assert result.affected == ["penguins", "seattle_weather"]
    assert all(m.reasons == ["new model"] for m in result.models)
