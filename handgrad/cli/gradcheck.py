"""``handgrad gradcheck``: one small float64 check of every public layer and loss."""

from __future__ import annotations

import time

from ..inspect import selfcheck
from ..inspect.gradcheck import GradcheckReport


def run_gradcheck() -> int:
    started = time.perf_counter()
    results, uncovered = selfcheck.check_all()
    failed = 0
    for label, report in results:
        if isinstance(report, GradcheckReport):
            print(report)
            failed += not report.passed
        else:
            print(f"gradcheck {label}: FAILED with {type(report).__name__}: {report}")
            failed += 1
        print()
    if uncovered:
        print("not covered (no recipe in handgrad.inspect.selfcheck): " + ", ".join(uncovered))
    passed = len(results) - failed
    print(f"gradcheck: {passed} of {len(results)} checks passed, {failed} failed "
          f"({time.perf_counter() - started:.1f} s)")
    return 1 if failed else 0
