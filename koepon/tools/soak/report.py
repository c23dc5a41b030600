"""The soak's report as tables, and `run_soak` for `koepon soak`."""

from __future__ import annotations

from .recorder import Result
from .run import Soak
from .stack import SoakStack


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _table(rows: list[list], echo) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        echo("  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w) for j, (c, w) in
                       enumerate(zip(row, widths, strict=True))))
        if i == 0:
            echo("  ".join("-" * w for w in widths))


def print_report(res: Result, echo=print) -> None:
    echo(f"\n== soak: {res.seconds:.0f} s, {res.fans} fans + 2 VTubers + admin + provider ==")
    echo(f"operations: {res.total_ops:,}   5xx answers: {res.server_errors}   "
         f"failures: {len(res.failures)}   invariant violations: {len(res.violations)}\n")
    rows = [["operation", "outcome", "count"]]
    for (kind, outcome), n in sorted(res.ops.items()):
        rows.append([kind, outcome, f"{n:,}"])
    _table(rows, echo)
    echo("")
    rows = [["fault injected", "count"]] + [[k, f"{v:,}"] for k, v in sorted(res.faults.items())]
    _table(rows, echo)
    echo("")
    rows = [["figure", "value"]] + [[k, f"{int(v):,}"] for k, v in res.figures.items()]
    _table(rows, echo)
    echo(f"\ninvariants checked ({len(res.checks)}): {', '.join(res.checks)}")
    echo(f"violations: {len(res.violations)}")
    for v in res.violations[:50]:
        echo(f"  VIOLATION {v}")
    for f in res.failures[:50]:
        echo(f"  FAILURE {f}")
    echo("RESULT: " + ("PASS (nothing lost)" if res.ok else "FAIL"))


def run_soak(seconds: float, fans: int = 8, seed: int | None = None, echo=print) -> Result:
    stack = SoakStack()
    try:
        stack.start()
        soak = Soak(stack, fans=fans, seed=seed)
        res = soak.run(seconds, echo=echo)
        if not res.ok:
            echo(stack.logs())
        return res
    finally:
        stack.stop()
