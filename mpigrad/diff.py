"""`mpigrad diff RUN_A RUN_B`: where two training runs part: config keys, the first logged step, parameters.

Exit 0 when everything compared is bitwise equal, 1 when anything differs, 2 on unusable input.
"""

import json
import math
import os
import sys

import numpy as np

from mpigrad.runtime.identity import CODE_KEYS, LABELS, rank_identities, rank_list

from .config import TRAJECTORY_KEYS
from .fingerprint import TABLE, same
from .run import RunError, check_run_dir, read_identity, read_parameters, read_raw_config, read_rows

FIELDS = ("loss", "grad_norm", "digest")  # bitwise equal across world sizes in deterministic mode


def compare_runs(dir_a, dir_b):
    """The differences of two run directories as a JSON-able dict; raises RunError on unusable input."""
    for directory in (dir_a, dir_b):
        check_run_dir(directory)
    config = config_differences(read_raw_config(dir_a), read_raw_config(dir_b))
    rows_a, rows_b = read_rows(dir_a), read_rows(dir_b)
    both_final = all(os.path.exists(os.path.join(d, "final.npz")) for d in (dir_a, dir_b))
    (params_a, source_a), (params_b, source_b) = (read_parameters(d, prefer_final=both_final) for d in (dir_a, dir_b))
    report = {"a": dir_a, "b": dir_b, "identity": identity_differences(read_identity(dir_a), read_identity(dir_b)),
              "config": config, "first_step": first_differing_step(rows_a, rows_b),
              "last_step": {"a": max(rows_a, default=None), "b": max(rows_b, default=None)},
              "parameters": {"a": source_a, "b": source_b, **parameter_differences(params_a, params_b)}}
    p = report["parameters"]
    report["equal"] = not (any(d["trajectory"] for d in config) or report["first_step"] or p["differ"]
                           or p["only_in_a"] or p["only_in_b"] or report["last_step"]["a"] != report["last_step"]["b"])
    return report


def identity_differences(a, b):
    """The numerical code each run used, where the two differ: {"a", "b" (the records), "differ": [{key, a, b}],
    "cpu": [a's, b's] when only the CPU models differ}; a run that recorded none has record None."""
    if a is None or b is None:
        return {"a": a, "b": b, "differ": [], "cpu": None}
    used_a, used_b = code_used(a), code_used(b)
    differ = [{"key": k, "label": LABELS[k], "a": describe_used(used_a[k]), "b": describe_used(used_b[k])}
              for k in CODE_KEYS if set(used_a[k]) != set(used_b[k])]
    cpus = [sorted({str(i.get("cpu")) for i in rank_identities(r)}) for r in (a, b)]
    return {"a": a, "b": b, "differ": differ, "cpu": cpus if cpus[0] != cpus[1] else None}


def code_used(record):
    """{key: {value: ["on ranks 0,1", "until step 300"]}} over the record's ranks and the code it resumed from."""
    ranks = {k: {} for k in CODE_KEYS}
    for rank, ident in enumerate(rank_identities(record)):
        for k in CODE_KEYS:
            ranks[k].setdefault(str(ident.get(k)), []).append(rank)
    used = {k: {value: [f"on {rank_list(held)}"] for value, held in ranks[k].items()} for k in CODE_KEYS}
    for earlier in record.get("earlier", []):
        for k in CODE_KEYS:
            for value in {str(ident.get(k)) for ident in rank_identities(earlier)}:
                used[k].setdefault(value, []).append(f"until {earlier.get('until', 'a resume')}")
    return used


def describe_used(where):
    """'Haswell' when one value served everything, else 'Haswell on rank 0, Sandybridge on rank 1'."""
    if len(where) == 1:
        return next(iter(where))
    return ", ".join(f"{value} {' and '.join(dict.fromkeys(places))}" for value, places in where.items())


def format_identity(r):
    """Why two runs' bits may differ although their configs agree: the numerical code they ran on."""
    i = r["identity"]
    missing = [r[side] for side in ("a", "b") if i[side] is None]
    if missing:
        return [f"identity: not recorded in {' and '.join(missing)} (numpy, BLAS kernels and threads unknown)"]
    if not i["differ"]:
        a = i["a"]
        same = (f"numpy {a.get('numpy')}, {a.get('blas')} {a.get('blas_kernels')} kernels, "
                f"{a.get('blas_threads')} BLAS thread(s)")
        cpu = f"; CPU {i['cpu'][0]} vs {i['cpu'][1]}, which runs the same code" if i["cpu"] else ""
        return [f"identity: the same numerical code ({same}){cpu}"]
    lines = [f"identity: {len(i['differ'])} field(s) differ, so the bits are expected to differ (other numerical "
             "code rounds the same sums differently)"]
    lines += [f"  {d['label']}: {d['a']} ({r['a']}) vs {d['b']} ({r['b']})" for d in i["differ"]]
    return lines


def config_differences(a, b):
    """Every differing key; only keys that shape the trajectory (config.TRAJECTORY_KEYS) count as a difference,
    and the data fingerprint when the bytes differ (not only the paths)."""
    def counts(k):
        if k == TABLE:  # a run of an older mpigrad has no record: nothing to compare
            return bool(a.get(k) and b.get(k)) and not same(a[k], b[k])
        return k in TRAJECTORY_KEYS
    return [{"key": k, "a": a.get(k), "b": b.get(k), "trajectory": counts(k)}
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def first_differing_step(rows_a, rows_b):
    """The first step logged by both where loss, grad_norm or digest differ (None when none does)."""
    for step in sorted(set(rows_a) & set(rows_b)):
        for field in FIELDS:
            if field in rows_a[step] and field in rows_b[step] and rows_a[step][field] != rows_b[step][field]:
                return {"step": step, "field": field, "a": rows_a[step][field], "b": rows_b[step][field]}
    return None


def parameter_differences(a, b):
    differ = [d for name in a if name in b for d in [array_difference(name, a[name], b[name])] if d]
    return {"compared": len(set(a) & set(b)), "differ": differ,
            "only_in_a": [n for n in a if n not in b], "only_in_b": [n for n in b if n not in a]}


def array_difference(name, x, y):
    """None when bitwise equal; else max |x - y|, max |x - y| / max(|x|, |y|) and the count of differing elements."""
    if x.shape != y.shape or x.dtype != y.dtype:
        return {"name": name, "problem": f"{x.dtype}{list(x.shape)} vs {y.dtype}{list(y.shape)}"}
    bits_x = np.ascontiguousarray(x).reshape(x.size, 1).view(np.uint8)
    bits_y = np.ascontiguousarray(y).reshape(y.size, 1).view(np.uint8)
    differs = np.any(bits_x != bits_y, axis=1)
    count = int(differs.sum())
    if count == 0:
        return None
    u, v = x.reshape(-1)[differs].astype(np.float64), y.reshape(-1)[differs].astype(np.float64)
    gap = np.abs(u - v)
    scale = np.maximum(np.abs(u), np.abs(v))
    rel = np.divide(gap, scale, out=np.zeros_like(gap), where=scale > 0)
    return {"name": name, "max_abs": _max(gap), "max_rel": _max(rel), "count": count, "size": int(x.size)}


def _max(values):
    return float(np.max(values)) if not np.isnan(values).any() else math.nan


def format_report(r):
    """The report as text, in the order: identity, config, metrics, parameters, verdict."""
    lines = format_identity(r)
    lines += [f"config: {len(r['config'])} key(s) differ" if r["config"] else "config: equal"]
    lines += [f"  {d['key']}: {d['a']!r} vs {d['b']!r}" + ("" if d["trajectory"] else " (does not change the results)")
              for d in r["config"]]
    s = r["first_step"]
    lines.append(f"metrics: first difference at step {s['step']}: {s['field']} {s['a']!r} vs {s['b']!r}" if s
                 else "metrics: loss, grad_norm and digest equal at every step logged by both")
    if r["last_step"]["a"] != r["last_step"]["b"]:
        lines.append(f"  last logged step {r['last_step']['a']} vs {r['last_step']['b']}")
    p = r["parameters"]
    verdict = f"{len(p['differ'])} of {p['compared']} differ" if p["differ"] else f"all {p['compared']} bitwise equal"
    lines.append(f"parameters ({p['a']} vs {p['b']}): {verdict}")
    for d in p["differ"]:
        lines.append(f"  {d['name']}: {d['problem']}" if "problem" in d else
                     f"  {d['name']}: max abs {d['max_abs']:.3g}, max rel {d['max_rel']:.3g}, "
                     f"{d['count']} of {d['size']} elements")
    for side in ("a", "b"):
        if p[f"only_in_{side}"]:
            lines.append(f"  only in {r[side]}: {', '.join(p[f'only_in_{side}'])}")
    lines.append("bitwise equal" if r["equal"] else "differ")
    return "\n".join(lines)


def diff_command(dir_a, dir_b, as_json):
    try:
        report = compare_runs(dir_a, dir_b)
    except RunError as e:
        print(f"mpigrad diff: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(_clean(report)) if as_json else format_report(report))
    return 0 if report["equal"] else 1


def _clean(value):
    """JSON has no NaN: written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
