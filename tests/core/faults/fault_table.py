"""The fault-injection table: every case of every file kind ends in one outcome, counted here
and printed at the end of the test session (tests/conftest.py's terminal summary).

Outcomes: `repaired` (everything served as before, from a redundant copy), `refused` (the
damaged part answered with a clear error, the rest served as before), `harmless` (everything
served as before with nothing to repair), `torn tail cut` (a final, incomplete entry dropped at
open as after a crash; its bytes kept in lost+found). Anything else — wrong data served, intact
data lost — fails the test that saw it, so it never reaches the table.
"""

from __future__ import annotations

from collections import Counter

OUTCOMES = ("repaired", "refused", "harmless", "torn tail cut")
ROWS: Counter[tuple[str, str, str]] = Counter()


def record(kind: str, case: str, outcome: str) -> None:
    assert outcome in OUTCOMES, outcome
    ROWS[(kind, case, outcome)] += 1


def render() -> str:
    """file kind × case × outcome counts, one line per (kind, case)."""
    cases = sorted({(k, c) for k, c, _ in ROWS})
    head = f"{'file kind':<26} {'case':<34} " + " ".join(f"{o:>13}" for o in OUTCOMES)
    lines = [head, "-" * len(head)]
    for kind, case in cases:
        lines.append(f"{kind:<26} {case:<34} " + " ".join(
            f"{ROWS[(kind, case, o)]:>13}" for o in OUTCOMES))
    return "\n".join(lines)
