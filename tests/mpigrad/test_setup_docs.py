"""The set-up the README and docs/ teach leaves a user ready: editable installs, the venv on PATH."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install_commands():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for path in [*pages, *sorted((ROOT / "scripts").glob("*.sh")), *sorted((ROOT / "mpigrad").glob("*.py"))]:
        for line in path.read_text().splitlines():
            for match in re.finditer(r"pip install( -q| --disable-pip-version-check)* [^`)\n]*", line):
                yield path.name, match.group(0)


def test_every_install_of_the_project_is_editable():
    found = list(install_commands())
    assert len(found) >= 4
    for name, command in found:
        if "." in command.split("install", 1)[1].split()[-1] or "mpigrad[" in command:
            assert " -e " in command, f"{name}: {command}"


def test_readme_and_train_script_say_how_to_get_the_commands_on_path():
    assert "source .venv/bin/activate" in (ROOT / "README.md").read_text()
    script = (ROOT / "scripts" / "train.sh").read_text()
    assert "source .venv/bin/activate" in script and "mpiexec -n ${NP:-2} mpigrad train" in script
    assert "exec .venv" not in script  # the job must return so the script can print the next command
