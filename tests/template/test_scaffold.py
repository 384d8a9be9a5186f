"""`mlops new-model --from-csv` / `mlops new-dataset`: a model and its dataset from one CSV,
every field explained, the inferred rules accepting the data they came from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines.core.errors import DefinitionError, MlopsError
from pipelines.template.scaffold import new_dataset, new_model

pytestmark = pytest.mark.code

CSV = "when,amount,items,region,gift,note,score\n" + "".join(
    f"2024-01-{d:02d},{10.5 + d},{d % 4},{'north' if d % 3 else 'south'},"
    f"{'yes' if d % 2 else 'no'},free text number {d},{'' if d == 7 else d * 2}\n"
    for d in range(1, 29)
)


@pytest.fixture
def scratch(tmp_path: Path) -> tuple[Path, Path, Path]:
    models, data = tmp_path / "repo/models", tmp_path / "repo/data"
    models.mkdir(parents=True)
    data.mkdir()
    csv = tmp_path / "orders.csv"
    csv.write_text(CSV)
    return models, data, csv


def commented_keys(text: str) -> list[str]:
    """Keys (at any depth) with neither a comment line above nor a comment on their line."""
    lines = text.splitlines()
    bare = []
    for i, line in enumerate(lines):
        key = re.match(r"^\s*([A-Za-z_]\w*):", line)
        if key and "#" not in line and not lines[i - 1].lstrip().startswith("#"):
            bare.append(key.group(1))
    return bare


def test_new_model_from_csv_writes_the_dataset_and_the_model_with_every_field_explained(
    scratch: tuple[Path, Path, Path],
) -> None:
    from pipelines.core.definitions import load_model
    from pipelines.stages.validate import validate_dataset

    models, data, csv = scratch

    path = new_model(
        models,
        data,
        name="orders",
        dataset="orders",
        task="regression",
        target="amount",
        features=None,
        owner="shop-team",
        description="",
        from_csv=csv,
    )

    model = load_model(models, data, "orders")
    columns = model.dataset.definition.columns
    assert {c: s.type.value for c, s in columns.items()} == {
        "when": "datetime",
        "amount": "float",
        "items": "int",
        "region": "category",
        "gift": "bool",
        "note": "string",
        "score": "int",
    }
    assert columns["score"].nullable and not columns["amount"].nullable
    assert (columns["items"].min, columns["items"].max) == (0, 3)
    assert columns["region"].categories == ["north", "south"]
    assert model.definition.features == ["items", "region", "gift", "note", "score"]
    assert (data / "orders/orders.csv").read_bytes() == csv.read_bytes()
    _, report = validate_dataset(model.dataset)
    assert report.ok, report.violations
    for written in (path, data / "orders/dataset.yaml"):
        assert commented_keys(written.read_text()) == [], written


def test_every_key_of_the_model_template_is_a_schema_field(
    scratch: tuple[Path, Path, Path],
) -> None:
    """The comments explain real fields: the scaffold sets each top-level field explicitly."""
    from pipelines.core.definitions import ModelDefinition

    models, data, csv = scratch
    path = new_model(
        models,
        data,
        name="orders",
        dataset="orders",
        task="regression",
        target="amount",
        features=None,
        owner="o",
        description="",
        from_csv=csv,
    )
    written = yaml.safe_load(path.read_text())
    assert set(written) == set(ModelDefinition.model_fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "no_such_column"}, "no_such_column"),
        ({"task": "ranking"}, "task must be one of"),
        ({"dataset": "Orders"}, "not a valid dataset name"),
    ],
    ids=["unknown-target", "unknown-task", "bad-dataset-name"],
)
def test_a_failed_scaffold_leaves_neither_model_nor_dataset(
    scratch: tuple[Path, Path, Path], kwargs: dict[str, str], message: str
) -> None:
    models, data, csv = scratch
    options = {"name": "orders", "dataset": "orders", "task": "regression", "target": "amount"}
    options.update(kwargs)

    with pytest.raises(MlopsError, match=message):
        new_model(models, data, **options, features=None, owner="o", description="", from_csv=csv)

    assert list(models.iterdir()) == [] and list(data.iterdir()) == []


def test_an_existing_dataset_is_never_overwritten(scratch: tuple[Path, Path, Path]) -> None:
    _, data, csv = scratch
    new_dataset(data, "orders", csv)
    before = (data / "orders/dataset.yaml").read_bytes()

    with pytest.raises(DefinitionError, match="already exists"):
        new_dataset(data, "orders", csv)

    assert (data / "orders/dataset.yaml").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [("a,b\n", "no data rows"), ("a b,c\n1,2\n", "not a plain name")],
    ids=["header-only", "odd-column-name"],
)
def test_an_unusable_csv_is_rejected_and_nothing_is_written(
    scratch: tuple[Path, Path, Path], content: str, message: str
) -> None:
    _, data, csv = scratch
    csv.write_text(content)

    with pytest.raises(DefinitionError, match=message):
        new_dataset(data, "orders", csv)

    assert list(data.iterdir()) == []


def test_a_new_model_joins_the_dispatch_choices_of_the_workflows(
    scratch: tuple[Path, Path, Path],
) -> None:
    """retrain.yml and promote-manual.yml offer every model by hand; a new one must appear."""
    models, data, csv = scratch
    workflows = models.parent / ".github/workflows"
    workflows.mkdir(parents=True)
    repo_root = Path(__file__).resolve().parents[2]
    for name in ("retrain.yml", "promote-manual.yml", "main.yml"):
        (workflows / name).write_text((repo_root / ".github/workflows" / name).read_text())
    main_before = (workflows / "main.yml").read_text()
    promote_before = yaml.safe_load((workflows / "promote-manual.yml").read_text())

    new_model(
        models,
        data,
        name="orders",
        dataset="orders",
        task="regression",
        target="amount",
        features=None,
        owner="o",
        description="",
        from_csv=csv,
    )

    for name in ("retrain.yml", "promote-manual.yml"):
        inputs = yaml.safe_load((workflows / name).read_text())[True]["workflow_dispatch"]["inputs"]
        assert inputs["model"]["options"] == ["orders"], name
    assert (workflows / "main.yml").read_text() == main_before
    promote = yaml.safe_load((workflows / "promote-manual.yml").read_text())
    environments = promote[True]["workflow_dispatch"]["inputs"]["environment"]["options"]
    before = promote_before[True]["workflow_dispatch"]["inputs"]["environment"]["options"]
    assert environments == before, "only the model choice changes"
