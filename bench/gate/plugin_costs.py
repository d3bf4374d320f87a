"""`python -m bench.gate.plugin_costs`: what each bundled plugin costs the edge, in instructions per request.

The gate's request mix (`workload.py`) under callgrind, once with its four plugins, once without any, and once
without each: a plugin's cost is the edge's count with it minus the count without it (its own work, its hooks'
calls, and what the edge builds only for hooks it has), so the figures repeat to a fraction of a per cent on a
busy machine, where `bench_plugin_costs.py`'s CPU times move by tens of per cent. `--clean-prompt` uses the
yardstick's kind of prompt (no PII, so the redactor finds nothing), as `bench_edge.py` and the yardstick send;
the default is the gate's prompt, which has an e-mail address and a phone number. ~2 minutes.

    .venv/bin/python -m bench.gate.plugin_costs [--clean-prompt] [--requests 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .gate import MeasurementFailed, measure_once
from .workload import PLUGINS

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40, help="measured requests per scenario")
    parser.add_argument("--clean-prompt", action="store_true", help="a prompt without PII (the yardstick's kind)")
    args = parser.parse_args(argv)
    prompt = ("--clean-prompt",) if args.clean_prompt else ()
    variants = {"every plugin": (), "no plugin": ("--without", "all")}
    variants.update({f"without {slug}": ("--without", slug) for slug in PLUGINS})
    counts: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="fjordgate-plugin-costs-") as tmp:
            for i, (name, extra) in enumerate(variants.items()):
                counts[name] = measure_once(args.requests, 20, Path(tmp) / f"v{i}", variant=(*extra, *prompt))
                print(f"{name}: " + ", ".join(f"{k} {v:,.0f}" for k, v in counts[name].items()), flush=True)
    except MeasurementFailed as exc:
        print(f"plugin costs: measurement failed: {exc}", file=sys.stderr)
        return 2
    full = counts["every plugin"]
    scenarios = list(full)
    print(f"\nInstructions per request ({'clean prompt' if args.clean_prompt else 'the gate prompt, with PII'}):")
    print(f"{'':28}" + "".join(f"{s:>14}" for s in scenarios))
    rows = [("edge with every plugin", full), ("edge without plugins", counts["no plugin"])]
    rows += [(f"  {slug}", {s: full[s] - counts[f"without {slug}"][s] for s in scenarios}) for slug in PLUGINS]
    alone = {s: sum(full[s] - counts[f"without {slug}"][s] for slug in PLUGINS) for s in scenarios}
    together = {s: full[s] - counts["no plugin"][s] for s in scenarios}
    rows += [
        ("  all four together", together),
        ("  shared (together - sum)", {s: together[s] - alone[s] for s in scenarios}),
    ]
    for label, values in rows:
        print(f"{label:28}" + "".join(f"{values[s]:>14,.0f}" for s in scenarios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
