"""`datman-flow review`: the review app (for now the full-size QC pictures the Dagster UI's
thumbnails link to) served with uvicorn until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from datman_flow.layout import data_dir_from
from datman_flow.review.urls import PICTURES_URL_VAR


def add_review_command(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="serve the full-size QC pictures (the review app) over HTTP")
    review.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    review.add_argument("--port", type=int, default=3001, help="port (default: %(default)s)")
    review.add_argument("--data-dir", help="data folder (default: env DATMAN_DATA_DIR, else ./data)")
    review.set_defaults(func=review_command)


def review_command(args: argparse.Namespace) -> int:
    from datman_flow.review.server import serve

    data_dir = data_dir_from(args.data_dir)
    if not data_dir.is_dir():
        print(f"no data folder at {data_dir}: give --data-dir or set DATMAN_DATA_DIR", file=sys.stderr)
        return 2
    print(f"QC pictures of {data_dir} on http://{args.host}:{args.port}/pictures/<session>/<file>; for links "
          f"from the Dagster UI set {PICTURES_URL_VAR}=http://{args.host}:{args.port} where Dagster runs "
          f"(or the address other machines reach this one by)", flush=True)
    serve(data_dir, args.host, args.port)
    return 0
