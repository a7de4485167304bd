"""`datman-flow instance move` on Dagster's own instances (SQLite here; SQLite to PostgreSQL in
tests/test_postgres_instance.py): every run with every event, a stopped move finished by running
it again, and no move while runs are not finished."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from datman_flow.defs.instance_move import MoveRefused, move_history


def finished_run(instance: dg.DagsterInstance, run_id: str, events: int) -> dg.DagsterRun:
    run = instance.add_run(dg.DagsterRun(job_name="ingest_session", run_id=run_id, status=dg.DagsterRunStatus.SUCCESS,
                                         tags={"dagster/partition": f"SPN01_CMH_{run_id}_01_01"}))
    for number in range(events):
        instance.report_engine_event(f"event {number} of {run_id}", run)
    return run


def messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.message for entry in instance.all_logs(run_id)]


def test_every_run_and_event_moves_once_and_a_stopped_move_is_finished():
    with dg.instance_for_test() as old, dg.instance_for_test() as new:
        for run_id, events in (("0001", 3), ("0002", 5)):
            finished_run(old, run_id, events)
        old.add_dynamic_partitions("sessions", ["SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"])
        # a move that stopped half way: the second run is there with 2 of its 5 events
        partial = new.add_run(old.get_run_by_id("0002"))
        for entry in old.all_logs("0002")[:2]:
            new.store_event(entry)
        moved = move_history(old, new)
        assert (moved.runs, moved.events, moved.runs_already_there, moved.partitions) == (2, 3 + 3, 0, 2)
        for run_id in ("0001", "0002"):
            assert messages(new, run_id) == messages(old, run_id)
        assert partial.run_id in {r.dagster_run.run_id for r in new.get_run_records()}
        assert sorted(new.get_dynamic_partitions("sessions")) == ["SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01"]
        again = move_history(old, new)
        assert (again.runs, again.events, again.runs_already_there, again.partitions) == (0, 0, 2, 0)
        assert len(new.get_run_records()) == 2


def test_no_move_while_a_run_is_not_finished():
    with dg.instance_for_test() as old, dg.instance_for_test() as new:
        finished_run(old, "0001", 1)
        old.add_run(dg.DagsterRun(job_name="ingest_session", run_id="busy0001", status=dg.DagsterRunStatus.STARTED))
        with pytest.raises(MoveRefused, match=r"runs not finished \(busy0001 \(STARTED\)\): stop the Dagster daemon"):
            move_history(old, new)
        assert new.get_run_records() == []


def test_the_command_names_what_is_wrong_before_touching_anything(tmp_path, capsys):
    from datman_flow.cli import main

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    assert main(["instance", "move", "--from", str(old), "--to", str(new)]) == 2
    assert f"no dagster.yaml in {new}" in capsys.readouterr().err
    assert main(["instance", "move", "--from", str(tmp_path / "nowhere"), "--to", str(new)]) == 2
    assert "no folder" in capsys.readouterr().err
    (new / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["instance", "move", "--from", str(new), "--to", str(new)]) == 2
    assert "the same folder" in capsys.readouterr().err
    (new / "dagster.yaml").write_text("storage: [not, a, mapping]\n")  # Dagster refuses it: said in one line
    assert main(["instance", "move", "--from", str(old), "--to", str(new)]) == 1
    assert "not moved: cannot open the instances" in capsys.readouterr().err
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert main(["instance", "yaml", "--config-dir", str(configs), "--out", str(new)]) == 2
    assert "is a folder" in capsys.readouterr().err
