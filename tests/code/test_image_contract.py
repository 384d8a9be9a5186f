"""serving/Dockerfile is one image for both SageMaker contracts: ``serve`` and ``train``.

SageMaker starts an endpoint container as ``docker run IMAGE serve`` and a training container
as ``docker run IMAGE train`` ("How Amazon SageMaker AI Runs Your Training Image",
docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html): with no
ENTRYPOINT, each word is run as a program on the image's PATH, which for this image means the
package's console scripts.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.code

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "serving" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def _scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = pyproject["project"]["scripts"]
    return scripts


def test_the_image_runs_python_3_11_the_version_the_pipeline_and_the_locks_are_made_for() -> None:
    (base,) = [args for word, args in _instructions() if word == "FROM"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-[\w.-]+", base)
    assert match, f"serving/Dockerfile: FROM {base!r} is not an official python image"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert (match[1], match[2]) == ("3", "11")
    assert pyproject["tool"]["mypy"]["python_version"] == "3.11"
    assert pyproject["project"]["requires-python"].startswith(">=3.11")


@pytest.mark.parametrize("program", ["serve", "train"])
def test_each_sagemaker_program_is_a_console_script_the_image_installs(program: str) -> None:
    target = _scripts().get(program)
    assert target, f"pyproject.toml [project.scripts] has no {program!r}"
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    assert module.split(".")[0] in {"pipelines", "serving"}
    copied = " ".join(args for word, args in _instructions() if word == "COPY")
    assert f"{module.split('.')[0]}/" in copied


def test_the_scheduled_monitor_job_finds_its_program_in_the_image() -> None:
    """The Processing job runs ``mlops monitor --baseline`` (infra.components.scheduled_monitor)."""
    from infra.components.scheduled_monitor import monitor_job_command

    command = monitor_job_command("penguins", "dev", "penguins-dev", "b", "1", 1)
    assert command[:3] == ["mlops", "monitor", "penguins"] and "--baseline" in command
    module = _scripts()["mlops"].partition(":")[0]
    assert callable(importlib.import_module(module).main)
    copied = " ".join(args for word, args in _instructions() if word == "COPY")
    for package in ("pipelines/", "serving/", "monitoring/"):  # the monitor imports all three
        assert package in copied


def test_no_entrypoint_so_sagemaker_chooses_serve_or_train() -> None:
    words = [word for word, _ in _instructions()]
    assert "ENTRYPOINT" not in words
    assert [args for word, args in _instructions() if word == "CMD"] == ['["serve"]']
    runs = " ".join(args for word, args in _instructions() if word == "RUN")
    assert "pip install --no-compile --no-deps ." in runs  # installs the console scripts


def _ignored(path: str) -> bool:
    """Docker's rule for .dockerignore: the last pattern that matches decides; ``!`` re-includes."""
    ignored = False
    lines = (ROOT / "serving" / "Dockerfile.dockerignore").read_text().splitlines()
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    sources = [
        source
        for word, args in _instructions()
        if word == "COPY"
        for source in args.split()[:-1]
        if not source.startswith("--")
    ]
    assert "requirements-runtime.lock" in sources
    assert [s for s in sources if _ignored(s.rstrip("/"))] == []
    assert _ignored("tests")  # the check can say no
