"""The table of what ``select`` tried: a list of dicts that prints as a table."""

from __future__ import annotations

COLUMNS = ("name", "kind", "statistics", "race", "confirmation", "decision")


class SelectionTable(list):
    """One dict per candidate (name, kind, race and confirmation episodes and means, the round it
    left the race, decision). A race mean is over that candidate's own race episodes (in
    brackets): one that left early played fewer, so its mean may stand above a later survivor's;
    "tied" marks one that left as good as a survivor, by candidate order (the default first).
    ``print(table)`` shows it as text; :meth:`to_markdown` as Markdown; :meth:`to_pandas` as a
    DataFrame (pandas needed)."""

    def _cells(self) -> list[list[str]]:
        rows = []
        for r in self:
            race = f"{r['race_mean']:.1f} ({r['race_episodes']})" if r.get("race_mean") is not None else "-"
            conf = f"{r['confirmation_mean']:.1f} ({r['confirmation_episodes']})" if "confirmation_mean" in r else ""
            left = r.get("decision") or (f"left in round {r['eliminated_in_round']}" if r.get("eliminated_in_round") else "")
            if r.get("tied"):
                left += " (tied; by candidate order)"
            if r.get("left_out"):
                left = f"left out: {r['left_out']}"
            rows.append([r["name"], r.get("kind", ""), str(r.get("statistics", "")), race, conf, left])
        return rows

    def __str__(self) -> str:
        rows = [list(COLUMNS), *self._cells()]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self._cells()])

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(list(self))


def with_decisions(rows: list[dict], deployed: str) -> SelectionTable:
    """The rows as a table, the deployed one marked."""
    table = SelectionTable(dict(r) for r in rows)
    for row in table:
        row["decision"] = "deployed" if row["name"] == deployed else ""
    return table
