"""The operator's to-do board: every session that needs a person, newest first, each problem
with what to do next (the command to promote, re-run, or fix the label). Built from the health
verdicts the sessions' runs recorded (health.py) and the labels refused at the door."""

from __future__ import annotations

from dataclasses import dataclass

from datman_flow.layout import DataLayout
from datman_flow.pipeline.health import KINDS, Problem, failed_problem, judge, read_facts
from datman_flow.pipeline.summary import Markdown, markdown_table
from datman_flow.store.board_queries import sessions_needing_a_person


@dataclass(frozen=True)
class BoardItem:
    session: str
    scan_date: str
    health: str  # attention | failed | rejected
    problem: Problem


@dataclass(frozen=True)
class Board:
    items: list[BoardItem]

    @property
    def sessions(self) -> list[str]:
        return list(dict.fromkeys(item.session for item in self.items))

    def counts(self) -> dict[str, int]:
        """Sessions per kind of problem (a session with two drifted tags counts once)."""
        seen = {(item.problem.kind, item.session) for item in self.items}
        return {kind: sum(1 for k, _ in seen if k == kind) for kind in KINDS if any(k == kind for k, _ in seen)}

    def markdown(self) -> Markdown:
        if not self.items:
            return Markdown("nothing needs a person: every recorded session is ok")
        return markdown_table(["session", "scan date", "health", "problem", "what to do next"],
                              [(i.session, i.scan_date, i.health, i.problem.text, i.problem.action)
                               for i in self.items])

    def metadata(self) -> dict[str, object]:
        counts = self.counts()
        return {"sessions_needing_a_person": len(self.sessions), "board": self.markdown(),
                **{f"{kind}_sessions": n for kind, n in counts.items()}}


def board_step(layout: DataLayout) -> Board:
    items = []
    for row in sessions_needing_a_person(layout.metric_store):
        facts = read_facts(layout, row.session)
        if row.status == "rejected":
            problems: tuple[Problem, ...] = tuple(p for p in [failed_problem(facts, "")] if p)
            health = "rejected"
        else:
            verdict = judge(facts)
            problems, health = verdict.problems, row.health
            if row.health == "failed" and verdict.verdict != "failed":  # the run failed after recording its rows
                problems = (Problem("failed", row.health_reasons or "the run failed",
                                    f"open the run in the Dagster UI; now: `datman-flow ingest --session "
                                    f"{row.session}`"), *problems)
        order = sorted(problems, key=lambda p: KINDS.index(p.kind))
        when = row.scan_date or (row.insert_date or "")[:10]  # a session refused or failed early has neither
        items += [BoardItem(row.session, when, health, p) for p in order]
    return Board(items)
