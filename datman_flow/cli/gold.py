"""`datman-flow gold ...`: gold standards as reviewed files under configs/gold/<STUDY>/<SITE>/<TAG>.json."""

from __future__ import annotations

import argparse
import json
import sys

from datman_flow.drift import GoldStandardError, gold_path, list_gold, load_gold
from datman_flow.layout import DataLayout, config_dir_from


def add_gold_commands(sub: argparse._SubParsersAction, add_dirs) -> None:
    gold = sub.add_parser("gold", help="gold standards of acquisition parameters (header drift)")
    gold_sub = gold.add_subparsers(dest="gold_command", required=True)
    prom = gold_sub.add_parser("promote", help="make a converted series the gold standard of its site and tag")
    prom.add_argument("--session", required=True, help="session label")
    prom.add_argument("--tag", required=True)
    prom.add_argument("--series", help="series number, when the session has several series of the tag")
    add_dirs(prom)
    prom.set_defaults(func=gold_promote)
    lst = gold_sub.add_parser("list", help="every gold standard, and files that cannot be used")
    lst.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    lst.set_defaults(func=gold_list)
    show = gold_sub.add_parser("show", help="print one gold standard")
    for name in ("study", "site", "tag"):
        show.add_argument(name)
    show.add_argument("--config-dir", help="configs folder (default: env DATMAN_CONFIG_DIR, else ./configs)")
    show.set_defaults(func=gold_show)


def gold_promote(args: argparse.Namespace) -> int:
    from datman_flow.cli.validate import EXIT_USAGE, existing_data_dir
    from datman_flow.pipeline.gold import PromoteRefused, promote_series

    data_dir = existing_data_dir(args.data_dir)
    if data_dir is None:
        return EXIT_USAGE
    config_dir, layout = config_dir_from(args.config_dir), DataLayout(data_dir)
    if not layout.metric_store.exists:  # reading would create it
        print(f"no metric store in {data_dir} yet: ingest {args.session} first", file=sys.stderr)
        return 1
    try:
        promoted = promote_series(config_dir, layout, args.session, args.tag, args.series)
    except PromoteRefused as exc:
        print(exc, file=sys.stderr)
        return exc.code
    verb = "replaced" if promoted.replaced else "wrote"
    print(f"{verb} {promoted.path}: review it and commit it with the other configs")
    return 0


def gold_list(args: argparse.Namespace) -> int:
    golds, errors = list_gold(config_dir_from(args.config_dir))
    for gold in golds:
        source = gold.source
        print(f"{gold.study}/{gold.site}/{gold.tag}: from {source.get('session', '?')} series "
              f"{source.get('series', '?')}, promoted {source.get('promoted_at', '?')}, "
              f"{len(gold.parameters)} parameters")
    for error in errors:
        print(f"unusable: {error}", file=sys.stderr)
    if not golds and not errors:
        print("no gold standards yet: `datman-flow gold promote --session LABEL --tag TAG`")
    return 1 if errors else 0


def gold_show(args: argparse.Namespace) -> int:
    path = gold_path(config_dir_from(args.config_dir), args.study, args.site, args.tag)
    try:
        gold = load_gold(path)
    except GoldStandardError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(gold.as_json(), indent=2, sort_keys=True))
    return 0
