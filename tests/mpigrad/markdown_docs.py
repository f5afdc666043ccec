"""The pieces of a Markdown page that can go stale, and the checks that hold them to the code.

A page is cut into fenced code blocks (with the `<!-- doc-test: ... -->` marker on the line before,
if any) and prose; prose yields inline code spans and links. Each check returns a list of problems,
one line each, naming the page and line, so a failing test says what to fix.
"""

import ast
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<kind>\w+)\s*(?P<arg>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)\)")
REPO_PATH = re.compile(r"(?:\./)?(?:autograd|optim|runtime|mpigrad|scripts|tests|examples|docs|\.ci)/[\w./*-]*[\w*]")
COMMAND_WORDS = {"mpigrad", "mpiexec", "mpirun", "srun", "sbatch", "salloc", "python", "python3", "bash", "sh",
                 "source", "cd", "export", "module", "pip", "timeout", "env", "time", "git", "ls", "cat", "echo",
                 "mkdir", "cp", "ln", "rm", "nproc", "if", "then", "else", "elif", "fi", "for", "do", "done",
                 "while", "set", "unset", "exit", "printf", "dot", "pytest", "conda", "uv"}
NOT_SHELL = {"python", "py", "toml", "json", "text", "txt", "output", "console-output", "diff", "yaml", "ini"}


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marker: tuple = None  # (kind, argument) of a doc-test marker comment

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Span:
    page: Path
    line: int
    text: str

    @property
    def where(self):
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def doc_pages():
    """README.md, RELIABILITY.md and every docs/*.md."""
    return [ROOT / "README.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse(page, text=None):
    """(code blocks, prose paragraphs as (first line, text)) of one Markdown page."""
    lines = (page.read_text() if text is None else text).splitlines()
    blocks, paragraphs, current, start, i = [], [], [], 0, 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening:
            fence, body, j = opening["fence"], [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                body.append(lines[j])
                j += 1
            before = next((line for line in reversed(lines[:i]) if line.strip()), "")
            marker = MARKER.match(before)
            blocks.append(Block(page, i + 1, (opening["info"].split() or [""])[0].lower(), "\n".join(body) + "\n",
                                (marker["kind"], marker["arg"]) if marker else None))
            i = j + 1
            continue
        if current and lines[i].startswith("#"):  # a heading is a paragraph of its own
            paragraphs.append((start, "\n".join(current)))
            current = []
        if lines[i].strip():
            start = start if current else i + 1
            current.append(lines[i])
        elif current:
            paragraphs.append((start, "\n".join(current)))
            current = []
        i += 1
    if current:
        paragraphs.append((start, "\n".join(current)))
    return blocks, paragraphs


def spans(page, paragraphs):
    """Every inline code span of the prose (one that runs over a line break joined with a space)."""
    return [Span(page, line + text.count("\n", 0, match.start()), " ".join(match.group(2).split()))
            for line, text in paragraphs for match in SPAN.finditer(text)]


def links(paragraphs):
    """(line, target) of every Markdown link and image in the prose."""
    return [(line + text.count("\n", 0, match.start()), match["target"])
            for line, text in paragraphs for match in LINK.finditer(text)]


def shell_commands(block):
    """Each command line of a shell-like block, continuation lines joined.

    With `$ ` prompts, only the prompted lines are commands (the rest is their output); without,
    a block holding a line that does not start like a command is output, and has none."""
    if block.lang in NOT_SHELL:
        return []
    lines, pending = [], ""
    for line in block.text.splitlines():
        line = pending + line.strip()
        pending = line[:-1] + " " if line.endswith("\\") else ""
        if not pending and line:
            lines.append(line)
    prompted = [line[2:] for line in lines if line.startswith("$ ")]
    if prompted:
        return prompted
    return lines if all(_starts_like_a_command(line) for line in lines) else []


def _starts_like_a_command(line):
    first = line.split()[0]
    return first.startswith("#") or "/" in first or "=" in first or first in COMMAND_WORDS


def tokens(command):
    """The shell words of a command split into pipeline parts; [] when it does not tokenize."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return []
    parts, part = [], []
    for word in words:
        if word in ("|", "||", "&&", ";"):
            parts.append(part)
            part = []
        else:
            part.append(word)
    return [*parts, part]


def python_names(code):
    """(module, name) of every `from mpigrad... import name` and (module, None) of `import mpigrad...`."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mpigrad":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "mpigrad"]
    return found


def toml_config(block):
    """The block's TOML as a dict, or None when it is not a flat mpigrad config (e.g. pyproject)."""
    data = tomllib.loads(block.text)
    return None if any(isinstance(value, dict) for value in data.values()) else data


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lstrip("#").strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(paragraphs):
    """The #anchors of a page's headings."""
    return {slug(text) for _, text in paragraphs if text.startswith("#")}
