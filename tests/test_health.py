"""The health verdict and the board, from recorded facts (no Dagster)."""

from __future__ import annotations

from datetime import datetime

from datman_flow.layout import DataLayout
from datman_flow.pipeline.board import board_step
from datman_flow.pipeline.health import SessionFacts, health_step, judge
from datman_flow.store import CheckRow, HeaderDiffRow, QcSeriesRow, SeriesRow, SessionRow

LABEL = "SPN01_CMH_0005_01_01"


def session(status: str = "ingested", **kw) -> SessionRow:
    return SessionRow(session=LABEL, study="SPN01", site="CMH", status=status, scan_date="2024-04-16",
                      ingested_at=datetime(2024, 4, 16, 12), **kw)


def diff(field: str, kind: str, expected: str, actual: str, tag: str = "T1") -> HeaderDiffRow:
    return HeaderDiffRow(session=LABEL, series_number="2", tag=tag, field=field, expected=expected, actual=actual,
                         tolerance=None, kind=kind, gold_source="gold", provisional=False, severity="warn")


def test_a_clean_session_is_ok():
    facts = SessionFacts(LABEL, session(), [SeriesRow(session=LABEL, scan_id="2", tag="T1", download_status="complete",
                                                      conversion_status="converted")],
                         [CheckRow(session=LABEL, check_name="expected_series", tag="T1", passed=True, expected=1, found=1),
                          CheckRow(session=LABEL, check_name="header_drift", tag="T1", passed=None)])
    assert judge(facts).verdict == "ok" and judge(facts).line == ""


def test_every_kind_of_problem_is_attention_with_upgrades_before_other_drift():
    facts = SessionFacts(
        LABEL, session("partial"),
        [SeriesRow(session=LABEL, scan_id="4", download_status="failed"),
         SeriesRow(session=LABEL, scan_id="3", series_number="3", tag="RST", download_status="complete",
                   conversion_status="failed")],
        [CheckRow(session=LABEL, check_name="expected_series", tag="DTI60", passed=False, expected=1, found=0),
         CheckRow(session=LABEL, check_name="expected_series", tag="T1", passed=False, expected=1, found=2),
         CheckRow(session=LABEL, check_name="qc_outliers", tag="T1", passed=False, series=("2",),
                  detail="cnr 0.4: site median 3.1 (n=12), z -5.0")],
        [diff("EchoTime", "changed", "0.003", "0.0034"), diff("SoftwareVersions", "software_upgrade",
                                                            '"syngo MR E11"', '"syngo MR E11C"')],
        [QcSeriesRow(session=LABEL, series_number="5", tag="DTI60", qc_type="dwi", status="failed", message="no bval")])
    health = judge(facts)
    assert health.verdict == "attention"
    kinds = [p.kind for p in health.problems]
    assert kinds == ["missing", "extra", "transfer", "conversion", "software_upgrade", "drift", "qc_outlier",
                     "qc_failed"]
    assert health.reasons[4] == "software upgrade syngo MR E11 -> syngo MR E11C"
    assert "datman-flow gold promote --session SPN01_CMH_0005_01_01 --tag T1 --series 2" in health.problems[4].action
    assert "cnr 0.4: site median 3.1 (n=12), z -5.0" in health.reasons[6]


def test_a_failed_run_or_session_is_failed_with_the_most_specific_reason():
    assert str(judge(SessionFacts(LABEL, session("failed", reason="pull interrupted")), "raw_dicom: boom")) == \
        "failed (pull interrupted)"
    assert str(judge(SessionFacts(LABEL, session("ingested")), "qc_metrics: out of memory")) == \
        "failed (qc_metrics: out of memory)"
    assert judge(SessionFacts(LABEL, None)).verdict == "failed"
    assert judge(SessionFacts(LABEL, session("ingesting"))).verdict == "failed"  # the run ended mid-way


def test_health_step_records_the_verdict_and_the_board_lists_problems_newest_first(tmp_path):
    layout = DataLayout(tmp_path)
    store = layout.metric_store
    older = "SPN01_CMH_0002_01_01"
    store.replace(SessionRow, older, [SessionRow(session=older, status="ingested", scan_date="2024-03-19")])
    store.replace(CheckRow, older, [CheckRow(session=older, check_name="expected_series", tag="DTI60", passed=False,
                                             expected=1, found=0)], part="expected_series")
    store.replace(SessionRow, LABEL, [session()])
    store.replace(HeaderDiffRow, LABEL, [diff("SoftwareVersions", "software_upgrade", '"E11"', '"E11C"')])
    store.replace(SessionRow, "badlabel_session", [SessionRow(session="badlabel_session", status="rejected",
                                                              reason="invalid session label", insert_date="2024-04-10")])
    fine = "SPN01_CMH_0001_01_01"
    store.replace(SessionRow, fine, [SessionRow(session=fine, status="ingested", scan_date="2024-03-12")])
    for label in (older, LABEL, fine):
        health_step(layout, label)
    assert {r["session"]: r["health"] for r in store.query("SELECT session, health FROM sessions")} == {
        older: "attention", LABEL: "attention", fine: "ok", "badlabel_session": ""}
    board = board_step(layout)
    assert board.sessions == [LABEL, "badlabel_session", older]  # newest scan first; the ok session is not there
    assert [i.problem.kind for i in board.items] == ["software_upgrade", "rejected", "missing"]
    assert "rename the session on XNAT" in board.items[1].problem.action
    assert board.metadata()["sessions_needing_a_person"] == 3 and board.counts()["missing"] == 1
