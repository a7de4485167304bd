"""The operator's to-do board: every session that needs a person, newest first, each problem
with what to do next (the command to promote, re-run, or fix the label). Built from the health
verdicts the sessions' runs recorded (health.py), the labels refused at the door, and people's
reviews (review_state.py):

- a session whose review failed (a picture's latest rating is FAIL, or a series is blacklisted)
  is listed with one `review` problem per finding, until a reviewer signs it off after its
  latest finding (the review is then `settled`);
- a session a reviewer signed off after its latest run was recorded leaves the board: whatever
  that run found has been seen by a person. (Sign-offs are kept in UTC, `ingested_at` in local
  time: they are compared on one clock.) A new run, or a new finding, brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from datman_flow.layout import DataLayout
from datman_flow.pipeline.health import KINDS, Problem, failed_problem, judge, read_facts
from datman_flow.pipeline.review_links import DEFAULT_REVIEW_URL
from datman_flow.pipeline.review_overview import review_states, signed_off_after
from datman_flow.pipeline.review_state import FAILED, ReviewState
from datman_flow.pipeline.review_summary import md_text, review_action
from datman_flow.pipeline.summary import Markdown, markdown_table
from datman_flow.store.board_queries import sessions_needing_a_person
from datman_flow.store.rows import SessionRow


@dataclass(frozen=True)
class BoardItem:
    session: str
    scan_date: str
    health: str  # attention | failed | rejected (ok: only its review failed)
    problem: Problem


@dataclass(frozen=True)
class Board:
    items: list[BoardItem]
    signed_off: int = 0  # sessions left off because a reviewer signed them off after their latest run

    @property
    def sessions(self) -> list[str]:
        return list(dict.fromkeys(item.session for item in self.items))

    def counts(self) -> dict[str, int]:
        """Sessions per kind of problem (a session with two drifted tags counts once)."""
        seen = {(item.problem.kind, item.session) for item in self.items}
        return {kind: sum(1 for k, _ in seen if k == kind) for kind in KINDS if any(k == kind for k, _ in seen)}

    def markdown(self) -> Markdown:
        if not self.items:
            return Markdown("nothing needs a person: every recorded session is ok or signed off by a reviewer")
        return markdown_table(["session", "scan date", "health", "problem", "what to do next"],
                              [(i.session, i.scan_date, i.health, i.problem.text, i.problem.action)
                               for i in self.items])

    def metadata(self) -> dict[str, object]:
        counts = self.counts()
        return {"sessions_needing_a_person": len(self.sessions), "board": self.markdown(),
                "signed_off_sessions_left_off": self.signed_off,
                **{f"{kind}_sessions": n for kind, n in counts.items()}}


def health_problems(layout: DataLayout, row: SessionRow) -> tuple[str, tuple[Problem, ...]]:
    """The session's health and what its run (or the door) found."""
    if row.health not in ("attention", "failed") and row.status != "rejected":
        return row.health or "ok", ()  # listed for its review only
    facts = read_facts(layout, row.session)
    if row.status == "rejected":
        return "rejected", tuple(p for p in [failed_problem(facts, "")] if p)
    verdict = judge(facts)
    problems = verdict.problems
    if row.health == "failed" and verdict.verdict != "failed":  # the run failed after recording its rows
        problems = (Problem("failed", row.health_reasons or "the run failed",
                            f"open the run in the Dagster UI; now: `datman-flow ingest --session {row.session}`"),
                    *problems)
    return row.health, problems


def review_problems(state: ReviewState | None, review_url: str) -> tuple[Problem, ...]:
    """One `review` problem per finding of a failed review nobody signed off since."""
    if state is None or state.state != FAILED or state.settled:
        return ()
    action = review_action(review_url, state.session)
    return tuple(Problem("review", md_text(f.text), action) for f in state.findings)


def board_step(layout: DataLayout, review_url: str = DEFAULT_REVIEW_URL) -> Board:
    """The board as of now; `review_url` is the review app's base URL (review_links.py), for the
    actions of review problems."""
    reviews = review_states(layout)
    failing = sorted(label for label, state in reviews.items() if review_problems(state, review_url))
    items, signed_off = [], 0
    for row in sessions_needing_a_person(layout.metric_store, also=failing):
        state = reviews.get(row.session)
        if signed_off_after(state, row.ingested_at):
            health, problems = row.health or "ok", ()
            signed_off += row.session not in failing
        else:
            health, problems = health_problems(layout, row)
        problems = (*problems, *review_problems(state, review_url))
        order = sorted(problems, key=lambda p: KINDS.index(p.kind))
        when = row.scan_date or (row.insert_date or "")[:10]  # a session refused or failed early has neither
        items += [BoardItem(row.session, when, health, p) for p in order]
    return Board(items, signed_off)
