"""A session's review as a person reads it in the Dagster UI (the `session_review` asset's
metadata and the board's review problems): plain values, wrapped by defs/metadata.py.

Reviewers' notes and reasons are typed into a web form: they are shown as text, never as
markdown (no link, picture or HTML of theirs is rendered) and on one line."""

from __future__ import annotations

import dataclasses
import re

from datman_flow.alerts.events import one_line
from datman_flow.pipeline.review_links import REVIEW_URL_VAR, session_link
from datman_flow.pipeline.review_state import FAILED, ReviewState, review_outcome
from datman_flow.pipeline.summary import CheckOutcome, Markdown, Metadata

# what starts a link, a picture, HTML, code or emphasis ('|' is a table's: markdown_table escapes it)
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")
TEXT_LIMIT = 600
DESCRIPTION_LIMIT = 2000


def md_text(text: object, limit: int = TEXT_LIMIT) -> str:
    """`text` on one line, at most `limit` characters, its markdown characters escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text, limit))


def review_check(state: ReviewState) -> CheckOutcome:
    """The `review` check (review_state.review_outcome) with its description on one line: it
    carries reviewers' notes."""
    outcome = review_outcome(state)
    return dataclasses.replace(outcome, description=one_line(outcome.description, DESCRIPTION_LIMIT))


def review_action(review_url: str, label: str) -> str:
    """What to do about a review finding (the board's `what to do next`)."""
    return (f"look at it in the review app ({session_link(review_url, label)}); blacklist the series or ask for a "
            f"re-scan; sign the session off when settled")


def review_metadata(state: ReviewState, review_url: str) -> Metadata:
    """The `session_review` asset's metadata: the state, its findings, the latest sign-off, the
    blacklisted series, the counts, and the session's page in the review app (`review_url` ''
    when the configured one was refused)."""
    findings = "\n".join(f"- {md_text(f.text)} ({f.created:%Y-%m-%d %H:%M} UTC)" for f in state.findings)
    signoff, link = state.signoff, session_link(review_url, state.session)
    signed = (f"{md_text(signoff.user)} on {signoff.created:%Y-%m-%d %H:%M} UTC"
              + (f": {md_text(signoff.comment)}" if signoff.comment else "")) if signoff else "not signed off"
    if signoff is not None and state.state == FAILED:
        signed += " (after every finding: settled)" if state.settled else " (before the latest finding)"
    return {"review": state.state, "findings": Markdown(findings or "none"), "signed_off": Markdown(signed),
            "blacklisted_series": ", ".join(state.blacklisted) or "none", "ratings": state.ratings,
            "rated_pictures": state.rated_images, "pictures": state.images,
            "review_app": Markdown(f"[{link}]({link})" if review_url else f"no link: {REVIEW_URL_VAR} is invalid")}
