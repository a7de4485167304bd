"""What each `datman-flow` subcommand does (argument parsing is in cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datman_flow.config import ConfigError, check_config, load_config
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from


def config_check(args: argparse.Namespace) -> int:
    config_dir = config_dir_from(args.config_dir)
    issues = check_config(config_dir)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        print(f"{len(issues)} error(s) in {config_dir}", file=sys.stderr)
        return 1
    config = load_config(config_dir)
    sites = sum(len(s.sites) for s in config.studies.values())
    print(f"{config_dir}: ok ({len(config.tags)} tags, {len(config.studies)} studies, {sites} sites)")
    return 0


def xnat_emulator(args: argparse.Namespace) -> int:
    from datman_flow.xnat.emulator import run_emulator

    run_emulator(Path(args.data), host=args.host, port=args.port, user=args.user, password=args.password)
    return 0


def samples(args: argparse.Namespace) -> int:
    from datman_flow.samples import write_sample_sessions

    for sample in write_sample_sessions(Path(args.out)):
        print(f"{sample.project}/{sample.label}: {sample.note}")
    return 0


def print_run(run) -> None:
    from datman_flow.pipeline.summary import tag_or_reason

    state = "ok" if run.success else f"FAILED: {run.error}"
    print(f"\n== {run.label}: {state}")
    for s in run.series:
        outcome = s.conversion_status if s.tag else "-"
        note = s.conversion_message if s.conversion_status == "failed" else ""
        print(f"  {s.series_number:>6}  {s.description[:34]:34}  {tag_or_reason(s)[:60]:60}  {s.n_files:>5} files  "
              f"{outcome}{'  ' + note if note else ''}")
    for name, passed, description, severity in run.checks:
        verdict = "PASS" if passed else ("FAIL" if severity == "WARN" else "FAIL, severity error")
        print(f"  check {name}: {verdict} ({description})")
    if run.qc:
        print(f"  qc metrics: {run.qc.get('measured', 0)} series measured, {run.qc.get('failed', 0)} failed")
        for line in str(run.qc.get("problems", "")).splitlines()[2:]:
            print(f"    {line.strip('| ').replace(' | ', ': ', 1).replace(' | ', ' ')}")


def ingest(args: argparse.Namespace) -> int:
    from datman_flow.ingest import dagster_instance, run_session
    from datman_flow.pipeline.resolve import SessionRejected, resolve_session

    config_dir, data_dir = config_dir_from(args.config_dir), data_dir_from(args.data_dir)
    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        print(f"configuration errors:\n{exc}", file=sys.stderr)
        return 2
    layout = DataLayout(data_dir)
    if args.new:
        from datman_flow.cli_poll import poll_once
        from datman_flow.xnat import XnatError

        try:
            labels, save_cursor = poll_once(config, layout, record_rejected=not args.dry_run)
        except XnatError as exc:
            print(f"could not poll XNAT: {exc}", file=sys.stderr)
            return 1
    else:
        labels, save_cursor = args.session, None
    if args.dry_run:
        return dry_run(config, labels)
    failed: list[str] = []
    with dagster_instance() as instance:
        for label in labels:
            try:
                resolve_session(config, label)
            except SessionRejected as exc:
                print(f"\n== {label}: not ingested: {exc}", file=sys.stderr)
                failed.append(label)
                continue
            run = run_session(instance, label, config_dir, data_dir,
                              log_level="INFO" if args.verbose else "CRITICAL")
            print_run(run)
            if not run.success:
                failed.append(label)
    if save_cursor:
        save_cursor(failed)
    print(f"\n{len(labels) - len(failed)} of {len(labels)} session(s) ingested" + (
        f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def dry_run(config, labels: list[str]) -> int:
    from datman_flow.pipeline.resolve import SessionRejected, resolve_session

    refused = 0
    for label in labels:
        try:
            target = resolve_session(config, label)
        except SessionRejected as exc:
            print(f"{label}: would not be ingested: {exc}")
            refused += 1
            continue
        expected = ", ".join(f"{tag} x{rule.count}" for tag, rule in sorted(target.rules.items()))
        print(f"{label}: would be ingested from XNAT project {target.site.xnat_project} (expects {expected})")
    print(f"dry run: {len(labels) - refused} session(s) would be ingested, {refused} refused; nothing changed")
    return 0


def status(args: argparse.Namespace) -> int:
    from datman_flow.store import query

    layout = DataLayout(data_dir_from(args.data_dir))
    rows = query(layout.metrics_db, layout.store,
                 "SELECT s.session, s.status, s.reason, count(r.scan_id) AS series, "
                 "count(*) FILTER (WHERE r.conversion_status = 'converted') AS converted "
                 "FROM sessions s LEFT JOIN series r USING (session) GROUP BY ALL ORDER BY s.session")
    for row in rows:
        print(json.dumps(row, default=str))
    return 0


def compliance(args: argparse.Namespace) -> int:
    from datman_flow.pipeline.compliance import compliance_text, study_compliance

    layout = DataLayout(data_dir_from(args.data_dir))
    report = study_compliance(layout.metrics_db, layout.store, args.study)
    print(f"protocol compliance of {args.study} ({layout.metrics_db})")
    print(compliance_text(report))
    return 0


def qc(args: argparse.Namespace) -> int:
    from datman_flow.qc.measure import analyse, picture

    nifti = Path(args.nifti)
    if not nifti.exists():
        print(f"{nifti}: no such file", file=sys.stderr)
        return 2
    try:
        measured = analyse(args.type, nifti)
    except Exception as exc:  # noqa: BLE001 - the command's job is to say what went wrong
        print(f"{nifti}: could not be measured as {args.type}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result = measured.result
    if args.picture:
        picture(args.type, nifti, measured, Path(args.picture))
    print(json.dumps({"file": str(nifti), "type": args.type, "seconds": round(result.seconds, 2),
                      "metrics": result.metrics}, indent=2, sort_keys=True, default=float))
    return 0


def demo(args: argparse.Namespace) -> int:
    from datman_flow.demo import run_demo

    return run_demo(Path(args.dir), headless=args.headless, ui_port=args.port, interval=args.interval)
