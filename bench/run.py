"""Run every benchmark, print one table, write ``bench/results.json``: what ``make bench`` does.

    .venv/bin/python bench/run.py                 # all of them, full sizes (takes a while)
    .venv/bin/python bench/run.py --quick         # small sizes, to see that they run
    .venv/bin/python bench/run.py --only smtp parse

Each benchmark runs in its own process (``bench/<name>.py --json FILE``), so one's memory and
threads do not colour the next. Each figure is measured beside its reference (a ceiling or a
floor) in the same run, and the ratio between them is what to compare across machines and
runs: this machine is shared and noisy. The machine the figures came from is recorded with
them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import _num  # noqa: E402 - bench/ is not a package: found once HERE is on the path

RESULTS = HERE / "results.json"
# In the order they run: the cheap ones first, so a quick look is quick.
BENCHMARKS = ("parse", "customers", "smtp", "memory", "pipeline")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": model or platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "memory_gib": mem_gib,
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def customers_section(figures: dict[str, Any]) -> dict[str, Any]:
    """bench/customers.py speaks its own dialect; put it in the common shape."""
    index = figures["index"]
    rows = [
        {"what": f"build the index of {index['prefixes']:,} prefixes", "value":
         round(figures["build_s"], 2), "unit": "s", "reference": None,
         "reference_value": None, "ratio": None},
        {"what": "index resident (RSS growth over the build, frozen)", "value":
         round(figures["index_rss_mb_frozen"]), "unit": "MB", "reference": None,
         "reference_value": None, "ratio": None},
        {"what": "index resident, the prebuilt file opened in a fresh process", "value":
         round(figures["open_prebuilt_rss_mb"]), "unit": "MB", "reference": None,
         "reference_value": None, "ratio": None},
        {"what": "lookup_ip (frozen), IPv4+IPv6 with time windows", "value":
         round(figures["lookups_per_s_frozen"]), "unit": "lookups/s",
         "reference": "dict.get of exact IP strings",
         "reference_value": round(figures["dict_lookups_per_s"]),
         "ratio": round(figures["lookups_per_s_frozen"] / figures["dict_lookups_per_s"], 3)},
        {"what": "lookup_ip (frozen), against pytricia's own get", "value":
         round(figures["lookups_per_s_frozen"]), "unit": "lookups/s",
         "reference": "pytricia get, same prefixes and addresses (C)",
         "reference_value": round(figures["pytricia_lookups_per_s"]),
         "ratio": round(figures["lookups_per_s_frozen"] / figures["pytricia_lookups_per_s"], 3)},
        {"what": "lookup_ips (frozen), batches of 256", "value":
         round(figures["batch_lookups_per_s_frozen"]), "unit": "lookups/s",
         "reference": "pytricia get, same prefixes and addresses (C)",
         "reference_value": round(figures["pytricia_lookups_per_s"]),
         "ratio": round(figures["batch_lookups_per_s_frozen"]
                       / figures["pytricia_lookups_per_s"], 3)},
    ]
    rate = max(figures["lookups_per_s_frozen"], figures["batch_lookups_per_s_frozen"])
    targets = [
        {"what": "customer lookups at 1,000,000 prefixes", "target": ">= 1,000,000/s",
         "measured": f"{rate:,.0f}/s", "met": rate >= 1_000_000},
        {"what": "customer index resident (opened from the prebuilt file)",
         "target": "<= 200 MB", "measured": f"{figures['open_prebuilt_rss_mb']:.0f} MB",
         "met": figures["open_prebuilt_rss_mb"] <= 200},
        {"what": "customer index built or loaded", "target": "<= 2 s",
         "measured": f"built {figures['build_s']:.1f} s, prebuilt file opened "
                     f"{figures['open_prebuilt_s']:.1f} s",
         "met": min(figures["build_s"], figures["open_prebuilt_s"]) <= 2},
    ]
    return {"name": "customers", "rows": rows, "targets": targets,
            "notes": [f"{figures['resolved_share']:.0%} of lookups resolve; max RSS "
                      f"{figures['max_rss_mb_after_build']:.0f} MB after the build"]}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        argv = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out)]
        if quick:
            argv += (["--prefixes", "100000", "--lookups", "50000"] if name == "customers"
                     else ["--quick"])
        started = time.monotonic()
        done = subprocess.run(argv, cwd=HERE.parent, check=False)
        took = time.monotonic() - started
        if done.returncode != 0 or not out.exists():
            return {"name": name, "rows": [], "targets": [], "error":
                    f"{name}.py exited {done.returncode}", "seconds": round(took, 1)}
        figures = json.loads(out.read_text())
    section = customers_section(figures) if name == "customers" else figures
    section["seconds"] = round(took, 1)
    return dict(section)


def table(sections: list[dict[str, Any]]) -> str:
    lines = []
    for section in sections:
        lines.append(f"== {section['name']} ({section.get('seconds', 0):.0f} s)")
        if section.get("error"):
            lines.append(f"   FAILED: {section['error']}")
        for row in section.get("rows", []):
            ref = ""
            if row.get("reference"):
                ref = f"   vs {row['reference']}: {_num(row['reference_value'])}"
                if row.get("ratio") is not None:
                    ref += f"  (ratio {row['ratio']:.2f})"
            lines.append(f"   {row['what']}: {_num(row['value'])} {row['unit']}{ref}")
        for target in section.get("targets", []):
            mark = "met" if target["met"] else "MISSED"
            lines.append(f"   target {target['what']}: {target['target']}; measured "
                         f"{target['measured']} -> {mark}")
        for note in section.get("notes", []):
            lines.append(f"   note: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, default=RESULTS, metavar="PATH",
                        help="where to write the results (default bench/results.json)")
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    results: dict[str, Any] = {"ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
                               "quick": args.quick, "machine": machine(), "benchmarks": []}
    for name in names:
        print(f"-- {name} ...", file=sys.stderr, flush=True)
        results["benchmarks"].append(run_one(name, args.quick))
    print(table(results["benchmarks"]))
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.json}", file=sys.stderr)
    failed = [s["name"] for s in results["benchmarks"] if s.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
