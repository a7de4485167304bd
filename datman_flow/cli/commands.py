"""What the smaller `datman-flow` subcommands do (argument parsing is in __init__.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datman_flow.config import check_config, load_config
from datman_flow.layout import DataLayout, config_dir_from


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


def compliance(args: argparse.Namespace) -> int:
    from datman_flow.cli.render import compliance_text
    from datman_flow.cli.validate import EXIT_USAGE, existing_data_dir, unknown_study
    from datman_flow.pipeline.compliance import study_compliance

    data_dir = existing_data_dir(args.data_dir)
    if data_dir is None:
        return EXIT_USAGE
    store = DataLayout(data_dir).metric_store
    problem = unknown_study(args.study, args.config_dir, store)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    report = study_compliance(store, args.study) if store.exists else []  # reading would create the store
    print(f"protocol compliance of {args.study} ({store.db_path})")
    print(compliance_text(report))
    return 0


def qc(args: argparse.Namespace) -> int:
    from datman_flow.qc.kinds import range_flags
    from datman_flow.qc.measure import analyse, picture
    from datman_flow.qc.settings import QcSettings

    nifti = Path(args.nifti)
    if not nifti.exists():
        print(f"{nifti}: no such file", file=sys.stderr)
        return 2
    try:
        measured = analyse(args.type, nifti, QcSettings(args.convention, args.anat_engine))
    except Exception as exc:  # noqa: BLE001 - the command's job is to say what went wrong
        print(f"{nifti}: could not be measured as {args.type}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result = measured.result
    if args.picture:
        picture(args.type, nifti, measured, Path(args.picture))
    # outside their typical range (those that hold for the convention the metrics were measured under)
    flags = [f.as_json() for f in range_flags(args.type, result.metrics, result.convention or None)]
    print(json.dumps({"file": str(nifti), "type": args.type, "seconds": round(result.seconds, 2),
                      "convention": result.convention, "anat_engine": result.engine or None,
                      "metrics": result.metrics, "flags": flags}, indent=2, sort_keys=True, default=float))
    return 0


def demo(args: argparse.Namespace) -> int:
    from datman_flow.cli.demo import run_demo

    return run_demo(Path(args.dir), headless=args.headless, ui_port=args.port, interval=args.interval)
