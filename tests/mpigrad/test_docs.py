"""Every command and code block of README.md, RELIABILITY.md and docs/*.md is held to the code.

- ```python blocks run, in page order, one process per page (blocks of a page share a namespace and
  a scratch directory). A block that cannot run here carries a marker comment on the line before:
  `<!-- doc-test: excerpt PATH -->` (its lines must appear, in order, in that file) or
  `<!-- doc-test: skip REASON -->` (it is only compiled; keep these few).
- ```toml blocks that are flat configs pass the config checks.
- `mpigrad SUBCOMMAND --flag` (in blocks and inline code) names a real subcommand and option;
  `--set key=value` and inline `key = value` name a config key and a value it accepts;
  `python path.py --flag` names an existing script that takes that option.
- Repository paths, test and bench file names, `mpigrad.x.y` names and imports, keyword arguments
  of public calls and relative links (with #anchors) resolve.
- docs/configuration.md holds the table scripts/config_table.py prints.
"""

import json
import os
import runpy
import subprocess
import sys
import textwrap

import pytest

import doc_checks as check
import markdown_docs as md

SKIPS_ALLOWED = 3
RUNNER = textwrap.dedent("""
    import json, sys, traceback
    namespace = {"__name__": "__main__"}
    for where, code in json.load(sys.stdin):
        try:
            exec(compile(code, where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            sys.exit(f"doc block {where} failed")
""")
PAGES = {page: md.parse(page) for page in md.doc_pages()}


def python_blocks():
    return [b for page_blocks, _ in PAGES.values() for b in page_blocks if b.lang == "python"]


def test_readme_is_short_and_keeps_the_two_set_up_commands():
    lines = (md.ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    for command in ("bash scripts/train.sh", "bash scripts/test.sh"):
        assert any(line.startswith(command) for line in lines), command


@pytest.mark.parametrize("page", list(PAGES), ids=lambda page: page.name)
def test_page_matches_the_code(page):
    problems = check.page_problems(page, *PAGES[page])
    assert not problems, "\n".join(problems)


def run_python_blocks(pages, tmp_path):
    """Run each page's unmarked Python blocks in order, one process per page; the failures' stderr."""
    runs = []
    for page, (page_blocks, _) in pages.items():
        code = [(b.where, b.text) for b in page_blocks if b.lang == "python" and b.marker is None]
        if code:
            scratch = tmp_path / page.stem
            scratch.mkdir()
            env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
            env.pop("PMI_RANK", None)  # each page runs as one process of its own, even under mpiexec
            process = subprocess.Popen([sys.executable, "-c", RUNNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, cwd=scratch, env=env)
            runs.append((process, json.dumps(code)))
    failures = []
    for process, code in runs:
        try:
            _, err = process.communicate(code, timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if process.returncode:
            failures.append(err)
    return failures


def test_python_blocks_run(tmp_path):
    failures = run_python_blocks(PAGES, tmp_path)
    assert not failures, "\n".join(failures) + (
        "\nA block that cannot run alone takes a marker on the line before it: "
        "<!-- doc-test: excerpt PATH --> (its lines are in that file) or <!-- doc-test: skip REASON -->")


def test_a_python_block_that_fails_is_named(tmp_path):
    path = md.ROOT / "docs" / "a-page.md"
    page = "```python\nx = 1\n```\n\n```python\nassert x == 2, 'stale'\n```\n"
    failures = run_python_blocks({path: md.parse(path, page)}, tmp_path)
    assert len(failures) == 1 and "docs/a-page.md:5 failed" in failures[0] and "stale" in failures[0]


def test_marked_python_blocks_are_excerpts_or_few_skips():
    marked = [b for b in python_blocks() if b.marker]
    problems = [f"{b.where}: unknown marker {b.marker[0]!r}" for b in marked if b.marker[0] not in ("excerpt", "skip")]
    problems += [p for b in marked if b.marker[0] == "excerpt" for p in excerpt_problems(b)]
    assert sum(b.marker[0] == "skip" for b in marked) <= SKIPS_ALLOWED
    assert not problems, "\n".join(problems)


def excerpt_problems(block):
    """Every non-blank line of the block is a line of the named file, in the same order."""
    source = md.ROOT / block.marker[1]
    if not source.is_file():
        return [f"{block.where}: excerpt of {block.marker[1]}: no such file"]
    lines = iter(line.strip() for line in source.read_text().splitlines())
    missing = [line for line in block.text.splitlines() if line.strip() and line.strip() not in lines]
    return [f"{block.where}: not (in this order) in {block.marker[1]}: {missing[0].strip()!r}"] if missing else []


def test_configuration_page_holds_the_generated_table():
    table = runpy.run_path(str(md.ROOT / "scripts" / "config_table.py"))["table"]()
    page = (md.ROOT / "docs" / "configuration.md").read_text()
    assert table in page, "docs/configuration.md: stale config table: run python scripts/config_table.py --write"


@pytest.mark.parametrize("page, problem", [
    ("```\nmpigrad train --no-such-flag\n```\n", "no such option"),
    ("Run `mpigrad trian --out x`.\n", "no such subcommand"),
    ("Run `OPENBLAS_NUM_THREADS=1 timeout 60 mpiexec -n 2 mpigrad train --bogus`.\n", "no such option"),
    ("```\nmpiexec -n 2 mpigrad train --set stepz=5\n```\n", "not a config key"),
    ("Set `nonfinite = \"maybe\"`.\n", "must be one of"),
    ("Set `log_evry = 5`.\n", "not a config key"),
    ("See `scripts/no_such_script.py` and `test_no_such.py`.\n", "no such file"),
    ("```\npython examples/train_mlp.py --no-such-option\n```\n", "no such option"),
    ("Call `mpigrad.runtime.no_such_name`.\n", "does not resolve"),
    ("```python\nfrom mpigrad.runtime import NoSuchThing\n```\n", "does not resolve"),
    ("Use `CosineLR(opt, total=10)`.\n", "takes no argument"),
    ("[gone](no_such_page.md)\n", "no such file"),
    ("[here](#no-such-heading)\n# A heading\n", "no such heading"),
    ("```toml\nmodel = \"mlp\"\nhiden = [3]\n```\n", "unknown config key"),
])
def test_the_checks_catch_a_stale_page(page, problem):
    path = md.ROOT / "docs" / "a-stale-page.md"  # as if it lay in docs/; never written
    found = check.page_problems(path, *md.parse(path, page))
    assert any(problem in p for p in found), found


def test_an_excerpt_that_left_its_file_is_caught():
    block = md.Block(md.ROOT / "README.md", 1, "python", "opt.step()\nno_such_line()\n",
                     ("excerpt", "examples/train_mlp.py"))
    assert "no_such_line()" in excerpt_problems(block)[0]


def test_output_and_messages_are_not_taken_for_commands():
    page = ("```\n  mpigrad flat     23.81 ms\n  kernel chunk 32 KB   26.98 ms\n```\n"
            "```\n$ mpigrad diff a b\nmpigrad per-parameter differs\n```\n"
            "It prints `mpigrad train: error: cannot write checkpoint` and `resume = true but DIR holds none`;\n"
            "in Python, `x = 3` and `bucket_mb = 4`; `DIR/mpigrad.lock`; `tests/mpigrad/test_doc*.py`;\n"
            "`array is compressed; mpigrad reads only what it writes`; `timeout 60 mpiexec -n 2 mpigrad train`;\n"
            "`mpigrad diff a b -- python train.py --anything`.\n")
    path = md.ROOT / "docs" / "a-page.md"
    assert check.page_problems(path, *md.parse(path, page)) == []


def test_readme_links_every_docs_page():
    _, paragraphs = PAGES[md.ROOT / "README.md"]
    linked = {(md.ROOT / target.partition("#")[0]).resolve() for _, target in md.links(paragraphs)}
    orphans = [page.name for page in sorted((md.ROOT / "docs").glob("*.md")) if page.resolve() not in linked]
    assert not orphans, f"README.md's Documentation list does not link {orphans}"
