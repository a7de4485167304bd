"""`datman-flow instance yaml [--storage sqlite|postgres] [--launcher local|docker] [--out FILE]`:
the Dagster instance's dagster.yaml from runs.yml (run queue, per-XNAT limit, QC pool, storage,
launcher). Printed, or written atomically to FILE (e.g. $DAGSTER_HOME/dagster.yaml)."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from datman_flow.cli.validate import EXIT_USAGE


def add_instance_command(sub: argparse._SubParsersAction) -> None:
    instance = sub.add_parser("instance", help="the Dagster instance's configuration (dagster.yaml)")
    instance_sub = instance.add_subparsers(dest="instance_command", required=True)
    write = instance_sub.add_parser(
        "yaml", help="print or write dagster.yaml from runs.yml",
        description="The run queue (max_concurrent_runs, pulls_per_xnat per XNAT server, ordered by "
                    "dagster/priority), the qc pool (qc_memory_gb / qc_gb_per_session), run monitoring, and the "
                    "storage and run launcher chosen here. PostgreSQL credentials are read from DAGSTER_PG_HOST, "
                    "DAGSTER_PG_PORT, DAGSTER_PG_USER, DAGSTER_PG_PASSWORD and DAGSTER_PG_DB when Dagster starts; "
                    "they are never written in the file.")
    write.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite",
                       help="sqlite: files under DAGSTER_HOME (one machine); postgres: a PostgreSQL database "
                            "(needs the postgres extra: pip install 'datman-flow[postgres]')")
    write.add_argument("--launcher", choices=("local", "docker"), default="local",
                       help="local: each run a process on this machine; docker: each run a container "
                            "(deploy/docker-compose.yml; needs the deploy extra)")
    write.add_argument("--out", metavar="FILE", help="write here (atomically) instead of printing")
    write.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    write.set_defaults(func=instance_yaml_command)
    move = instance_sub.add_parser(
        "move", help="copy Dagster's history (runs, sensor cursors, session partitions) to another instance",
        description="From one DAGSTER_HOME (e.g. SQLite files) to another (e.g. one whose dagster.yaml uses "
                    "PostgreSQL): the sensors' cursors and state, the sessions' partitions and every finished run "
                    "with its events. Stop the Dagster daemon first. Running it again finishes a stopped move; "
                    "the old instance is left as it was.")
    move.add_argument("--from", dest="source", metavar="DAGSTER_HOME", required=True,
                      help="the folder of the old instance's dagster.yaml")
    move.add_argument("--to", dest="target", metavar="DAGSTER_HOME", required=True,
                      help="the folder of the new instance's dagster.yaml")
    move.set_defaults(func=instance_move_command)


def instance_yaml_command(args: argparse.Namespace) -> int:
    from datman_flow.atomic import write_text_atomic
    from datman_flow.config import ConfigError, load_config
    from datman_flow.instance_yaml import instance_yaml
    from datman_flow.layout import config_dir_from

    try:
        config = load_config(config_dir_from(args.config_dir))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    text = instance_yaml(config.runs, args.storage, args.launcher)
    if not args.out:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.is_dir():
        print(f"{out} is a folder: name the file (…/dagster.yaml)", file=sys.stderr)
        return EXIT_USAGE
    if not out.parent.is_dir():
        print(f"no folder {out.parent} to write {out.name} into", file=sys.stderr)
        return EXIT_USAGE
    write_text_atomic(out, text)
    runs = config.runs
    print(f"{out}: at most {runs.max_concurrent_runs} runs at once, {runs.pulls_per_xnat} per XNAT server, "
          f"{runs.qc_slots} QC at once; storage {args.storage}, launcher {args.launcher}. Restart the Dagster "
          "daemon and webserver to apply it.")
    return 0


def instance_move_command(args: argparse.Namespace) -> int:
    import dagster as dg

    from datman_flow.defs.instance_move import MoveRefused, move_history

    source, target = Path(args.source).resolve(), Path(args.target).resolve()
    problem = (f"no folder {source}" if not source.is_dir()
               else f"no dagster.yaml in {target}: write the new instance's first (datman-flow instance yaml --out)"
               if not (target / "dagster.yaml").is_file()
               else "--from and --to are the same folder" if source == target else None)
    if problem:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    with ExitStack() as opened:  # the first instance closed if the second does not open
        try:
            old, new = (opened.enter_context(dg.DagsterInstance.from_config(str(home))) for home in (source, target))
        except Exception as exc:  # noqa: BLE001  (a bad dagster.yaml, a database that refuses: said, not a traceback)
            print(f"not moved: cannot open the instances ({type(exc).__name__}: {exc})", file=sys.stderr)
            return 1
        try:
            moved = move_history(old, new)
        except MoveRefused as exc:
            print(f"not moved: {exc}", file=sys.stderr)
            return 1
    print(f"moved {moved.runs} run(s) with {moved.events} event(s) ({moved.runs_already_there} already there), "
          f"{moved.partitions} session partition(s), {moved.sensor_states} sensor state(s) from {source} to {target}")
    return 0
