"""`datman-flow ingest`: named sessions, or `--new` (one look at XNAT, as the sensor takes,
with the same cursor and retry bookkeeping, kept in <data>/state/), or a dry run."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datman_flow.atomic import write_text_atomic
from datman_flow.cli.render import print_run
from datman_flow.config import ConfigError, LabConfig, load_config
from datman_flow.layout import DataLayout, config_dir_from, data_dir_from
from datman_flow.pipeline import watch
from datman_flow.pipeline.locks import is_locked
from datman_flow.pipeline.poll import settle_from_env
from datman_flow.pipeline.resolve import SessionRejected, resolve_session
from datman_flow.pipeline.retry import DEFAULT_DELAYS_MINUTES, RETRY_TAG, transfer_trouble
from datman_flow.xnat import XnatClient, XnatError

EXIT_FAILED = 1  # a run failed, or a label was refused
EXIT_CONFIG = 2  # the configuration is invalid
EXIT_INCOMPLETE = 3  # every run finished, but a scan did not arrive complete (a later --new retries it)


def state_path(layout: DataLayout) -> Path:
    return layout.root / "state" / "ingest_new_cursor.json"


def load_state(layout: DataLayout) -> watch.WatchState:
    path = state_path(layout)
    return watch.WatchState.from_json(path.read_text() if path.exists() else None)


def look_once(config: LabConfig, layout: DataLayout, state: watch.WatchState,
              record_rejected: bool = True, settle: timedelta | None = None) -> watch.Look:
    """One look at XNAT, said on the terminal (XnatError when no project can be listed)."""
    found = watch.look(config, state, lambda url: XnatClient.from_env(url, retry_budget=watch.LISTING_RETRY_SECONDS),
                       layout, datetime.now(UTC),
                       record_rejected=record_rejected, is_active=lambda label: is_locked(layout, label),
                       settle=settle_from_env() if settle is None else settle)
    for line in found.errors + found.stuck:
        print(f"warning: {line}", file=sys.stderr)
    for rejected in found.rejected:
        print(f"{rejected.experiment.label}: not ingested: {rejected.reason}", file=sys.stderr)
    waiting = f", {len(state.retries.due)} waiting" if state.retries.due else ""
    changed = f" ({len(found.changed)} changed on XNAT since their run)" if found.changed else ""
    settling = f", {len(found.pending)} still settling on XNAT" if found.pending else ""
    print(f"XNAT lists {found.listed} session(s): {len(found.new)} new{changed}, {len(found.rejected)} rejected, "
          f"{len(found.retries)} to retry{waiting}{settling}")
    return found


@dataclass
class Outcomes:
    failed: list[str] = field(default_factory=list)  # refused labels and runs that failed
    incomplete: list[str] = field(default_factory=list)  # ran, but a scan did not arrive complete


def run_labels(labels: list[str], attempts: dict[str, int], config: LabConfig, config_dir: Path,
               layout: DataLayout, verbose: bool = False, state: watch.WatchState | None = None,
               timed: bool = False, delays: tuple[int, ...] = DEFAULT_DELAYS_MINUTES) -> Outcomes:
    """Run each session in-process and print it; with a watch state, each finished run is
    reported to it (a failed transfer books a retry, as the sensor does)."""
    from datman_flow.defs.runner import dagster_instance, run_session  # Dagster loads only for a run

    outcomes = Outcomes()
    failed = outcomes.failed
    with dagster_instance() as instance:
        for label in labels:
            try:
                resolve_session(config, label)
            except SessionRejected as exc:
                print(f"\n== {label}: not ingested: {exc}", file=sys.stderr)
                failed.append(label)
                continue
            attempt, started = attempts.get(label, 0), time.perf_counter()
            run = run_session(instance, label, config_dir, layout.root, log_level="INFO" if verbose else "CRITICAL",
                              tags={RETRY_TAG: str(attempt)} if attempt else None)
            print_run(run)
            if timed:
                print(f"  ({time.perf_counter() - started:.1f} s)")
            if not run.success:
                failed.append(label)
            elif transfer_trouble(layout, label):
                outcomes.incomplete.append(label)
            note = watch.finished(state, layout, label, attempt, datetime.now(UTC), delays) if state else None
            if note:
                print(f"  {note.message}", file=sys.stderr if note.gave_up else sys.stdout)
    return outcomes


def ingest(args: argparse.Namespace) -> int:
    config_dir, data_dir = config_dir_from(args.config_dir), data_dir_from(args.data_dir)
    try:
        config = load_config(config_dir)
    except ConfigError as exc:
        print(f"configuration errors:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    layout = DataLayout(data_dir)
    state, attempts = None, {}
    if args.new:
        state = load_state(layout)
        try:
            found = look_once(config, layout, state, record_rejected=not args.dry_run,
                              settle=None if args.settle_minutes is None else timedelta(minutes=args.settle_minutes))
        except XnatError as exc:
            print(f"could not poll XNAT: {exc}", file=sys.stderr)
            return 1
        labels, attempts = found.labels, dict(found.retries)
    else:
        labels = args.session
    if args.dry_run:
        return dry_run(config, labels)
    outcomes = run_labels(labels, attempts, config, config_dir, layout, verbose=args.verbose, state=state,
                          delays=tuple(args.retry_delays))
    if state is not None:
        write_text_atomic(state_path(layout), state.to_json())
    failed, incomplete = outcomes.failed, outcomes.incomplete
    print(f"\n{len(labels) - len(failed)} of {len(labels)} session(s) ingested" + (
        f"; failed: {', '.join(failed)}" if failed else "") + (
        f"; incomplete (a scan not downloaded): {', '.join(incomplete)}" if incomplete else ""))
    return EXIT_FAILED if failed else EXIT_INCOMPLETE if incomplete else 0


def dry_run(config: LabConfig, labels: list[str]) -> int:
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
