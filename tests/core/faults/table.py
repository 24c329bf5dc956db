"""The fault-injection table: (file kind, case, outcome) rows, printed as one table at the end
of the session (conftest.py). Every fault case ends in exactly one outcome:

- repaired: detected and fixed from a redundant copy; everything is as before;
- refused: detected; the damaged value is not used (a clear error, a safe fallback or a
  refusal to start) and nothing is deleted;
- harmless: provably the same visible state (e.g. a torn tail: an append never acknowledged).
"""

from __future__ import annotations

from collections import Counter

OUTCOMES = ("repaired", "refused", "harmless")


class FaultTable:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def record(self, kind: str, case: str, outcome: str) -> None:
        assert outcome in OUTCOMES, outcome
        self.rows.append((kind, case, outcome))

    def counts(self) -> dict[tuple[str, str], Counter]:
        out: dict[tuple[str, str], Counter] = {}
        for kind, case, outcome in self.rows:
            out.setdefault((kind, case), Counter())[outcome] += 1
        return out

    def render(self) -> str:
        counts = self.counts()
        kw = max([len("file kind")] + [len(k) for k, _ in counts])
        cw = max([len("case")] + [len(c) for _, c in counts])
        head = f"{'file kind':<{kw}}  {'case':<{cw}}  " + "  ".join(f"{o:>8}" for o in OUTCOMES)
        lines = [head, "-" * len(head)]
        for (kind, case), n in counts.items():
            lines.append(f"{kind:<{kw}}  {case:<{cw}}  "
                         + "  ".join(f"{n[o]:>8}" for o in OUTCOMES))
        total = Counter(o for _, _, o in self.rows)
        lines.append("-" * len(head))
        lines.append(f"{'total':<{kw}}  {len(self.rows):<{cw}}  "
                     + "  ".join(f"{total[o]:>8}" for o in OUTCOMES))
        return "\n".join(lines)


TABLE = FaultTable()  # one per session, shared by every fault module
