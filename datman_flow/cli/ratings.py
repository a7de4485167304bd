"""`datman-flow ratings export DIR`: reviewers' ratings as the A2CPS derivative-QC kit's four
Parquet tables (session, image, rating, coordinate), for the kit's notebooks and recipes."""

from __future__ import annotations

import argparse
import sys

SHOWN_PROBLEMS = 20  # pictures named one by one; the rest counted


def add_ratings_command(sub: argparse._SubParsersAction, add_dirs) -> None:
    ratings = sub.add_parser("ratings", help="reviewers' ratings (the A2CPS derivative-QC kit's tables)")
    ratings_sub = ratings.add_subparsers(dest="ratings_command", required=True)
    export = ratings_sub.add_parser(
        "export", help="write session/image/rating/coordinate.parquet (the A2CPS kit's columns) into DIR",
        description="Writes the four tables of the A2CPS derivative-QC kit (django-qcapp-ratings' Session, "
                    "Image, Rating and ClickedCoordinate) with the kit's columns and types; each rated "
                    "picture's PNG is embedded in image.img. Each file is replaced atomically.")
    export.add_argument("dir", metavar="DIR", help="output folder (made if missing)")
    export.add_argument("--study", metavar="CODE", help="only this study's scanning sessions (labels CODE_...)")
    add_dirs(export)
    export.set_defaults(func=ratings_export)


def ratings_export(args: argparse.Namespace) -> int:
    from datman_flow.cli.validate import EXIT_USAGE, existing_layout, output_folder, unknown_study
    from datman_flow.export.ratings import export_ratings

    layout = existing_layout(args.data_dir, "nothing has been reviewed there")
    if layout is None:
        return EXIT_USAGE
    data_dir, store = layout.root, layout.metric_store
    if args.study:
        problem = unknown_study(args.study, args.config_dir, store)
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_USAGE
    out_dir = output_folder(args.dir)
    if out_dir is None:
        return EXIT_USAGE
    done = export_ratings(data_dir, out_dir, args.study)
    tables = done.tables
    scope = f"study {args.study}" if args.study else "every study"
    print(f"ratings of {scope} from {store.parquet_dir}:")
    for table, count in tables.rows.items():
        print(f"  wrote {tables.path(table)}: {count} row(s)")
    for table, count in tables.left_out.items():
        if count:
            print(f"  left out {count} {table} row(s): their image or rating session is not among the exported rows")
    for problem in done.problems[:SHOWN_PROBLEMS]:
        print(f"  image {problem.image_id} exported without its picture ({problem.kind}: {problem.reason}): "
              f"{problem.img or '(none)'}")
    if len(done.problems) > SHOWN_PROBLEMS:
        print(f"  ... and {len(done.problems) - SHOWN_PROBLEMS} more image(s) without their picture")
    if not any(tables.left_out.values()) and not done.problems:
        print("  nothing left out")
    return 0
