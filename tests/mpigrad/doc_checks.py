"""Checks of the commands, config keys, paths, Python names and links a Markdown page mentions.

Each function takes what markdown_docs.py cut out of a page and returns problems, one line each.
"""

import difflib
import importlib
import inspect
import os
import re
import textwrap
import tomllib
from pathlib import Path

import markdown_docs as md
from mpigrad.cli import build_parser
from mpigrad.config import KEYS, ConfigError, _check_value, check_config, parse_override

PLACEHOLDER = re.compile(r"^[A-Z_]+$|\.\.\.|^<.*>$|^\$|^\{")
PYTHONS = {"python", "python3"}
LAUNCHERS = {"mpiexec", "mpirun", "srun", "timeout", "env", "time", "exec", *PYTHONS}
NOT_NAMES = {"lock", "toml", "json", "jsonl", "npz", "npy", "py", "md", "txt", "log", "ckpt", "png", "tmp"}


def subcommands():
    """{subcommand: {option strings}} of the `mpigrad` parser."""
    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {name: set(sub._option_string_actions) for name, sub in action.choices.items()}


def check_command(words, where, commands):
    """An `mpigrad ...`, `python -m mpigrad ...` or `python path.py ...` command against the code."""
    words = [w.strip("[]") for w in words]
    for i, word in enumerate(words):
        if not _launch_prefix(words[:i]):
            return []  # a word such as `mpigrad` inside a sentence or a message, not a command
        if word == "mpigrad" or word.endswith("/bin/mpigrad"):
            return _check_mpigrad(words[i + 1:], where, commands)
        if word == "-m" and i + 1 < len(words) and words[i + 1] == "mpigrad":
            return _check_mpigrad(words[i + 2:], where, commands)
        if os.path.basename(word) in PYTHONS and i + 1 < len(words) and words[i + 1].endswith(".py"):
            return _check_script(words[i + 1], words[i + 2:], where)
    return []


def _launch_prefix(words):
    """Whether the words can precede a program: launchers, their options and values, VAR=value."""
    for i, word in enumerate(words):
        option_value = i > 0 and words[i - 1].startswith("-") and not word.startswith("-")
        number = word.replace(".", "", 1).isdigit()  # timeout 60
        if not (os.path.basename(word) in LAUNCHERS or word.startswith("-") or "=" in word or option_value or number):
            return False
    return True


def _check_mpigrad(args, where, commands):
    if not args or PLACEHOLDER.search(args[0]) or args[0].startswith("-") or args[0].endswith(":"):
        return []
    if args[0] not in commands:
        return [f"{where}: `mpigrad {args[0]}`: no such subcommand (have {', '.join(sorted(commands))})"]
    problems, own = [], args[:args.index("--")] if "--" in args else args  # after --: another program's
    for flag, value in zip(own[1:], [*own[2:], ""]):
        name = flag.split("=", 1)[0]
        if name.startswith("--") and name not in commands[args[0]]:
            problems.append(f"{where}: `mpigrad {args[0]} {name}`: no such option")
        if name == "--set":
            problems += check_override(value if "=" not in flag else flag.split("=", 1)[1], where)
    return problems


def _check_script(path, args, where):
    if PLACEHOLDER.search(path) or not md.REPO_PATH.fullmatch(path):
        return []
    file = md.ROOT / path
    if not file.is_file():
        return []  # check_paths reports it
    text = file.read_text()
    return [f"{where}: `{path} {flag}`: the script takes no such option" for flag in args
            if flag.startswith("--") and not re.search(rf"[\"']{re.escape(flag.split('=')[0])}[\"']", text)]


def check_override(item, where):
    """`key=value` of a --set: a config key, and a value that key accepts."""
    key, sep, value = item.partition("=")
    if not sep or PLACEHOLDER.search(value) or key.lower() == "key":
        return []
    if key not in KEYS:
        return [f"{where}: --set {item}: '{key}' is not a config key"]
    return check_key_value(key, parse_override(item)[1], where)


def check_key_value(key, value, where):
    try:
        _check_value(key, value)
    except ConfigError as e:
        return [f"{where}: {e}"]
    return []


def check_toml(block):
    """A TOML block that is a config: every key known, every value allowed, the keys consistent."""
    data = md.toml_config(block)
    if data is None:
        return []
    try:
        check_config(data)
    except ConfigError as e:
        return [f"{block.where}: {e}"]
    return []


def check_paths(text, where):
    """Every repository path (`scripts/x.py`, `tests/...::test`) and test or bench file name exists."""
    problems = []
    for match in md.REPO_PATH.finditer(text):
        if match.start() and text[match.start() - 1] in "/.~$\\{":
            continue  # a path inside another path, such as /shared/runs or ~/venvs/...
        path = match.group(0).split("::")[0]
        if not ((md.ROOT / path).exists() or "*" in path and any(md.ROOT.glob(path))):
            problems.append(f"{where}: `{path}`: no such file or directory")
    for name in set(re.findall(r"\b((?:test|bench)_\w+\.py)\b", text)):
        if not any((md.ROOT / folder).rglob(name) for folder in ("tests", "scripts")):
            problems.append(f"{where}: `{name}`: no such file in the repository")
    return problems


def check_python_name(span):
    """`mpigrad.x.y` resolves; `Name(kw=...)` of a public class or function accepts those keywords."""
    problems = []
    for dotted in re.findall(r"\bmpigrad(?:\.\w+)+", span.text):
        if dotted.rsplit(".", 1)[1] not in NOT_NAMES and resolve(dotted) is None:  # not a file name
            problems.append(f"{span.where}: `{dotted}` does not resolve")
    call = re.fullmatch(r"(?:nn\.)?(\w+)\((.*)\)", span.text)
    target = public_names().get(call.group(1)) if call else None
    if target is not None:
        problems += _check_keywords(target, call.group(1), call.group(2), span.where)
    return problems


def _check_keywords(target, name, arguments, where):
    parameters = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    keywords = re.findall(r"(?:^|,)\s*(\w+)\s*=", arguments)
    return [f"{where}: `{name}(...)` takes no argument '{k}'" for k in keywords if k not in parameters]


def resolve(dotted):
    """The object a dotted name names, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


_PUBLIC = {}


def public_names():
    """Classes and functions exported by mpigrad.autograd, .nn, .optim and .runtime."""
    if not _PUBLIC:
        for module in ("mpigrad.autograd", "mpigrad.autograd.nn", "mpigrad.optim", "mpigrad.runtime"):
            mod = importlib.import_module(module)
            _PUBLIC.update({n: v for n, v in vars(mod).items() if not n.startswith("_") and callable(v)})
    return _PUBLIC


def check_link(page, target, line, paragraphs):
    """A relative link names an existing file (and, with #anchor, a heading of it or of this page)."""
    if re.match(r"^[a-z]+:", target):
        return []
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    where = f"{page.relative_to(md.ROOT)}:{line}"
    if file != page and not file.exists():
        return [f"{where}: link to {target}: no such file"]
    if anchor and file.suffix == ".md" and anchor not in md.anchors(paragraphs if file == page else md.parse(file)[1]):
        return [f"{where}: link to {target}: no such heading in {Path(path or page.name).name}"]
    return []


def check_setting(span):
    """Inline `key = value` names a config key and a value it accepts; so does inline `--set key=value`."""
    setting = re.fullmatch(r"([a-z_]+) = (.+)", span.text)
    if not setting:
        return []
    key, text = setting.groups()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return []  # not a TOML value: prose or a message, not a setting
    if key in KEYS:
        return check_key_value(key, value, span.where)
    if difflib.get_close_matches(key, KEYS, n=1, cutoff=0.8):  # a typo; other names may be Python
        return [f"{span.where}: `{span.text}`: '{key}' is not a config key"]
    return []


def check_imports(block):
    """The block compiles, and every mpigrad module and name it imports exists."""
    try:
        names = md.python_names(textwrap.dedent(block.text))
    except SyntaxError as e:
        return [f"{block.where}: not valid Python: {e}"]
    return [f"{block.where}: {module}.{name} does not resolve" for module, name in names
            if resolve(module if name is None else f"{module}.{name}") is None]


def page_problems(page, blocks, paragraphs):
    """Every problem the static checks find on one parsed page."""
    commands, problems = subcommands(), []
    for block in blocks:
        problems += check_toml(block) if block.lang == "toml" else []
        lines = md.shell_commands(block)
        problems += [p for line in lines for words in md.tokens(line) for p in check_command(words, block.where, commands)]
        problems += check_paths(block.text if block.lang == "python" else "\n".join(lines), block.where)
        if block.lang == "python":
            problems += check_imports(block)
    for span in md.spans(page, paragraphs):
        problems += [p for words in md.tokens(span.text) for p in check_command(words, span.where, commands)]
        problems += check_setting(span) + check_paths(span.text, span.where) + check_python_name(span)
    problems += [p for line, target in md.links(paragraphs) for p in check_link(page, target, line, paragraphs)]
    return problems
