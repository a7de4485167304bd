"""`datman-flow webapi submit`: the T1w and BOLD records of chosen sessions sent to an MRIQC
Web-API (MRIQC's public one by default), each record once per endpoint."""

from __future__ import annotations

import argparse
import json
import os
import sys
from urllib.parse import urlsplit

from datman_flow.export.webapi_submit import DEFAULT_ENDPOINT

TOKEN_VAR = "DATMAN_WEBAPI_TOKEN"
LOCK_WAIT_SECONDS = 60.0  # a session being ingested is skipped after this wait, and said so


def add_webapi_command(sub: argparse._SubParsersAction, add_dirs) -> None:
    webapi = sub.add_parser("webapi", help="MRIQC Web-API: send T1w and BOLD image-quality records")
    webapi_sub = webapi.add_subparsers(dest="webapi_command", required=True)
    submit = webapi_sub.add_parser(
        "submit", help="send the sessions' T1w and BOLD records (never twice to one endpoint)",
        description=f"Sends each measured T1w and BOLD series' record to <endpoint>/<T1w|bold> as MRIQC's "
                    f"upload does (subject and session hashed), with the token from env {TOKEN_VAR}. "
                    f"Diffusion, blacklisted and phantom series are not sent; a record lacking an IQM the "
                    f"Web-API requires is 'not sendable' (nothing is made up).")
    which = submit.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", action="append", metavar="LABEL", help="a session label (repeatable)")
    which.add_argument("--study", metavar="CODE", help="every measured session of this study")
    submit.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="the Web-API's URL (default: %(default)s)")
    submit.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    add_dirs(submit)
    submit.set_defaults(func=webapi_submit)


def endpoint_of(text: str) -> str | None:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return None
    return text.strip().rstrip("/")


def webapi_submit(args: argparse.Namespace) -> int:
    from datman_flow.cli.validate import EXIT_USAGE, existing_layout, unknown_study
    from datman_flow.naming import InvalidLabel, parse_session_label
    from datman_flow.store.export_queries import measured_sessions

    endpoint = endpoint_of(args.endpoint)
    if endpoint is None:
        print(f"--endpoint {args.endpoint!r}: an http(s) URL such as {DEFAULT_ENDPOINT}", file=sys.stderr)
        return EXIT_USAGE
    token = os.environ.get(TOKEN_VAR, "").strip()
    if not token and not args.dry_run:
        print(f"no Web-API token: set {TOKEN_VAR} (or use --dry-run to see what would be sent)", file=sys.stderr)
        return EXIT_USAGE
    layout = existing_layout(args.data_dir, "nothing has been measured there")
    if layout is None:
        return EXIT_USAGE
    data_dir = layout.root
    if args.study:
        problem = unknown_study(args.study, args.config_dir, layout.metric_store)
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_USAGE
        labels = measured_sessions(layout.metric_store, args.study)
        if not labels:
            print(f"no measured session of {args.study} in {data_dir}")
    else:
        labels = list(dict.fromkeys(args.session))
        for label in labels:
            try:
                parse_session_label(label)
            except InvalidLabel as exc:
                print(exc, file=sys.stderr)
                return EXIT_USAGE
    return submit_sessions(layout, labels, endpoint, token, args.dry_run)


def submit_sessions(layout, labels: list[str], endpoint: str, token: str, dry_run: bool) -> int:
    import requests

    from datman_flow.export.webapi_submit import session_candidates, submit
    from datman_flow.pipeline.locks import SessionBusy, session_lock
    from datman_flow.pipeline.review_state import read_review

    verb = "would send" if dry_run else "sending"
    print(f"{verb} to {endpoint}" + (" (dry run: nothing is sent)" if dry_run else ""))
    counts = {"sent": 0, "refused": 0, "failed": 0, "skipped": 0, "would send": 0}
    with requests.Session() as http:
        for label in labels:
            try:
                with session_lock(layout, label, "webapi submit", wait_seconds=LOCK_WAIT_SECONDS):
                    blacklisted = read_review(layout, label).blacklisted
                    candidates = session_candidates(layout, label, endpoint, blacklisted)
                    if not candidates:
                        print(f"{label}: no measured series")
                    for candidate in candidates:
                        if candidate.skip:
                            counts["skipped"] += 1
                            print(f"{candidate.name}: {candidate.skip}")
                        elif dry_run:
                            counts["would send"] += 1
                            record = candidate.record
                            assert record is not None
                            print(f"{candidate.name}: would send to {endpoint}/{record.modality}:")
                            print(json.dumps(record.payload, indent=2, sort_keys=True))
                            if record.left_out:
                                print(f"  left out: {'; '.join(record.left_out)}")
                        else:
                            done = submit(layout.metric_store, http, endpoint, token, candidate)
                            counts[done.status] += 1
                            tail = f" ({done.reason})" if done.reason else ""
                            what = f"sent, _id {done.api_id}" if done.status == "sent" else done.status
                            print(f"{candidate.name}: {what}{tail}")
            except SessionBusy as exc:
                counts["failed"] += 1
                print(f"{label}: skipped: {exc}")
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    print(f"done: {summary or 'nothing to send'}")
    return 1 if counts["refused"] or counts["failed"] else 0
