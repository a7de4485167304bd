"""`datman-flow review`: the reviewers' web app (the queue, session pages, ratings, sign-offs, and
the full-size QC pictures the Dagster UI's thumbnails link to) served with uvicorn until Ctrl-C.
Reviewers log in with accounts made by `datman-flow reviewer add NAME`."""

from __future__ import annotations

import argparse
import sys

from datman_flow.layout import data_dir_from
from datman_flow.review.urls import PICTURES_URL_VAR

DEFAULT_PORT = 8050


def add_review_command(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="serve the review app (queue, session pages, ratings, QC pictures)")
    review.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    review.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    review.add_argument("--data-dir", help="data folder (default: env DATMAN_DATA_DIR, else ./data)")
    review.add_argument("--https-only-cookie", action="store_true",
                        help="send the login cookie over HTTPS only (behind a TLS proxy)")
    review.set_defaults(func=review_command)


def review_command(args: argparse.Namespace) -> int:
    from datman_flow.review.accounts import AccountError, Accounts
    from datman_flow.review.secret import SecretError
    from datman_flow.review.server import serve

    data_dir = data_dir_from(args.data_dir)
    if not data_dir.is_dir():
        print(f"no data folder at {data_dir}: give --data-dir or set DATMAN_DATA_DIR", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"--port {args.port}: a port from 1 to 65535", file=sys.stderr)
        return 2
    try:
        reviewers = Accounts(data_dir).reviewers()
    except AccountError as exc:
        print(exc, file=sys.stderr)
        return 2
    address = f"http://{args.host}:{args.port}"
    print(f"review app of {data_dir} on {address}/ (log in there); QC pictures on {address}/pictures/<session>/"
          f"<file>; for links from the Dagster UI set {PICTURES_URL_VAR}={address} where Dagster runs (or the "
          f"address other machines reach this one by)", flush=True)
    if not reviewers:
        print("no reviewers yet: add one with `datman-flow reviewer add NAME`", flush=True)
    try:
        serve(data_dir, args.host, args.port, https_only=args.https_only_cookie)
    except SecretError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0
