"""Print the config reference table (Markdown) from the checked keys themselves.

    python scripts/config_table.py           # print it
    python scripts/config_table.py --write   # replace the table in docs/configuration.md
"""

import argparse
import re
from pathlib import Path

from mpigrad import config
from mpigrad.config import KEYS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
TABLE = re.compile(r"^\| key \| default \|.*?\n(?=\n|\Z)", re.S | re.M)


def allowed(spec):
    """The values a key accepts, in words."""
    if spec.choices is not None:
        return ", ".join(f'`"{c}"`' for c in spec.choices)
    if spec.kind is bool:
        return "`true`, `false`"
    if spec.kind is list:
        return "list of integers >= 1"
    if spec.kind is str:
        return "string"
    kind = "integer" if spec.kind is int else "number"
    if spec.hi is not None:
        return f"{kind}, {_number(spec.lo)} to {_number(spec.hi)}"
    if spec.lo is not None:
        return f"{kind} {'>' if spec.positive else '>='} {_number(spec.lo)}"
    return kind


def _number(value):
    if isinstance(value, int) and value > 2**31 and (value + 1).bit_count() == 1:
        return f"2^{value.bit_length()} - 1"
    return f"{value:g}"


def meaning(key):
    """The key's help text (config.key_help's, where the config module has one)."""
    key_help = getattr(config, "key_help", None)
    return key_help(key) if key_help else KEYS[key].doc


def table():
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for key, spec in KEYS.items():
        default = str(spec.default).lower() if isinstance(spec.default, bool) else repr(spec.default)
        rows.append(f"| `{key}` | `{default}` | {allowed(spec)} | {meaning(key)} |")
    return "\n".join(rows) + "\n"


def write(page=PAGE):
    """Replace the table already in the page (the lines from its header to the next blank line)."""
    text = page.read_text()
    if not TABLE.search(text):
        raise SystemExit(f"{page}: no config table (a line starting '| key | default |') to replace")
    page.write_text(TABLE.sub(lambda _: table(), text, count=1))
    print(f"wrote the config table into {page}")


def main():
    parser = argparse.ArgumentParser(description="Print the config reference table (Markdown).")
    parser.add_argument("--write", action="store_true", help=f"replace the table in {PAGE.name}")
    if parser.parse_args().write:
        write()
    else:
        print(table(), end="")


if __name__ == "__main__":
    main()
