"""`datman-flow reviewer ...`: the review app's accounts (<data>/state/reviewers.json).

    reviewer add NAME [--password-stdin]       a new reviewer (password asked twice, or one line on stdin)
    reviewer list                              every reviewer, when added, how many API tokens
    reviewer remove NAME                       the reviewer can no longer log in (open logins end too)
    reviewer password NAME [--password-stdin]  a new password
    reviewer token NAME                        a new API token for MRIQC reports' rating widget, shown once

Misuse (a bad or unknown name, a short password, passwords that differ, no data folder) is
exit 2 with the reason on stderr. Each change is written to the review audit log, by the
operating-system user who ran the command."""

from __future__ import annotations

import argparse
import getpass
import sys

PROMPT_TRIES = 3


def add_reviewer_commands(sub: argparse._SubParsersAction, add_data_dir) -> None:
    reviewer = sub.add_parser("reviewer", help="the review app's reviewers: add, list, remove, password, token",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = reviewer.add_subparsers(dest="reviewer_command", required=True)
    for name, what, with_password in (("add", "add a reviewer", True), ("remove", "remove a reviewer", False),
                                      ("password", "set a reviewer's password", True),
                                      ("token", "make a new API token for MRIQC reports (printed once)", False)):
        action = actions.add_parser(name, help=what)
        action.add_argument("name", metavar="NAME", help="1-64 letters, digits, '.', '_' or '-'")
        if with_password:
            action.add_argument("--password-stdin", action="store_true",
                                help="read the password from the first line of stdin instead of asking")
        add_data_dir(action)
        action.set_defaults(func=reviewer_command)
    listing = actions.add_parser("list", help="list the reviewers")
    add_data_dir(listing)
    listing.set_defaults(func=reviewer_command)


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a prompt (ValueError if they differ)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ; nothing changed")
    return first


def reviewer_command(args: argparse.Namespace) -> int:
    from datman_flow.cli.validate import EXIT_USAGE, existing_data_dir
    from datman_flow.review.accounts import AccountError, Accounts, check_name
    from datman_flow.review.audit import AuditLog

    data_dir = existing_data_dir(getattr(args, "data_dir", None))
    if data_dir is None:
        return EXIT_USAGE
    accounts, action = Accounts(data_dir), args.reviewer_command
    try:
        if action == "list":
            found = accounts.reviewers()
            for r in found:
                print(f"{r.name}\tadded {r.created or '?'}\t{r.tokens} API token(s)")
            if not found:
                print(f"no reviewers in {accounts.path}: `datman-flow reviewer add NAME`")
            return 0
        name = check_name(args.name)
        if action in ("add", "password"):
            if action == "password" and not accounts.exists(name):
                raise AccountError(f"no reviewer {name!r}")
            if action == "add" and accounts.exists(name):
                raise AccountError(f"reviewer {name!r} exists already (`datman-flow reviewer password {name}` "
                                   f"sets a new password)")
            password = read_password(args.password_stdin)
            (accounts.add if action == "add" else accounts.set_password)(name, password)
            print(f"{'added' if action == 'add' else 'new password for'} reviewer {name} ({accounts.path})")
        elif action == "remove":
            accounts.remove(name)
            print(f"removed reviewer {name}: they can no longer log in")
        else:
            token = accounts.new_token(name)
            print(token)
            print(f"a new API token for {name}: shown this once, keep it where the MRIQC reports' rating widget can "
                  f"send it (Authorization: Bearer ...)", file=sys.stderr)
    except (AccountError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    AuditLog(data_dir).record(f"reviewer_{action}", getpass.getuser(), client="command line", reviewer=name)
    return 0
