"""The digest rows a script's `mpigrad.runtime.log_digest` calls wrote, and where two runs' rows part."""

import json

from .run import RunError


def read_digest_log(path):
    """The rows of a digests.jsonl file, in order; RunError when there are none."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        rows = []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path}: unreadable ({e})") from None
    if not rows or not all(isinstance(r, dict) and "step" in r for r in rows):
        raise RunError(f"{path}: no digests logged (the script must call mpigrad.runtime.log_digest)")
    return rows


def compare_digest_logs(reference, rows):
    """The first (step, field, part) where `rows` parts from `reference`; None when they are bitwise equal."""
    for ref, row in zip(reference, rows):
        if ref["step"] != row["step"]:
            return {"step": min(ref["step"], row["step"]), "field": "step"}
        for field in sorted(set(ref) | set(row)):
            if field != "parts" and ref.get(field) != row.get(field):
                first = {"step": row["step"], "field": field}
                parts = ref.get("parts", {})
                differ = [name for name in parts if parts[name] != row.get("parts", {}).get(name)]
                return {**first, "part": differ[0]} if differ else first
    if len(reference) != len(rows):
        shorter = reference if len(reference) < len(rows) else rows
        longer = rows if shorter is reference else reference
        return {"step": longer[len(shorter)]["step"], "field": "missing"}
    return None
