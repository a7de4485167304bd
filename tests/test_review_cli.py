"""`datman-flow reviewer ...` (accounts from the command line, misuse is exit 2 with the reason),
`datman-flow review`'s defaults, the demo's reviewer, and the key the review app signs its
cookie with (env, else a file made once, readable by its owner only)."""

from __future__ import annotations

import io
import os
import stat

import pytest

from datman_flow.cli import build_parser, main
from datman_flow.review.accounts import Accounts
from datman_flow.review.audit import AuditLog
from datman_flow.review.secret import SecretError, review_secret, secret_path

PASSWORD = "a long enough password"


def run(monkeypatch, capsys, data, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["reviewer", *args, "--data-dir", str(data)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_reviewers_are_added_listed_given_passwords_and_tokens_and_removed(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    code, out, _ = run(monkeypatch, capsys, data, "list")
    assert code == 0 and "no reviewers" in out
    assert run(monkeypatch, capsys, data, "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")[0] == 0
    accounts = Accounts(data)
    assert accounts.verify("alice", PASSWORD) and not accounts.verify("alice", PASSWORD + "\n")
    assert stat.S_IMODE(accounts.path.stat().st_mode) & 0o007 == 0
    code, out, _ = run(monkeypatch, capsys, data, "list")
    assert code == 0 and out.startswith("alice\tadded ") and "0 API token(s)" in out
    code, _, _ = run(monkeypatch, capsys, data, "password", "alice", "--password-stdin", stdin="another password 2\n")
    assert code == 0 and accounts.verify("alice", "another password 2") and not accounts.verify("alice", PASSWORD)
    code, out, err = run(monkeypatch, capsys, data, "token", "alice")
    token = out.strip()
    assert code == 0 and len(token) >= 32 and accounts.user_for_token(token) == "alice" and "shown this once" in err
    assert token not in accounts.path.read_text()  # only its digest is kept
    code, out, _ = run(monkeypatch, capsys, data, "remove", "alice")
    assert code == 0 and "removed" in out and not accounts.exists("alice")
    done = [(e["what"], e["reviewer"]) for e in AuditLog(data).entries()]
    assert done == [("reviewer_add", "alice"), ("reviewer_password", "alice"), ("reviewer_token", "alice"),
                    ("reviewer_remove", "alice")]


def test_misuse_is_exit_2_with_the_reason(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    run(monkeypatch, capsys, data, "add", "bob", "--password-stdin", stdin=PASSWORD)
    for args, stdin, reason in ((("add", "bob", "--password-stdin"), PASSWORD, "exists already"),
                                (("add", "carol", "--password-stdin"), "short", "8 to 1024 characters"),
                                (("add", "../etc", "--password-stdin"), PASSWORD, "reviewer name '../etc'"),
                                (("add", "-x", "--password-stdin"), PASSWORD, "reviewer name"),
                                (("password", "nobody", "--password-stdin"), PASSWORD, "no reviewer 'nobody'"),
                                (("remove", "nobody"), "", "no reviewer 'nobody'"),
                                (("token", "nobody"), "", "no reviewer 'nobody'")):
        if args[1] == "-x":  # argparse takes it for an option: its own usage error, also exit 2
            with pytest.raises(SystemExit) as exit_:
                run(monkeypatch, capsys, data, *args, stdin=stdin)
            assert exit_.value.code == 2
            continue
        code, _, err = run(monkeypatch, capsys, data, *args, stdin=stdin)
        assert code == 2 and reason in err, (args, err)
    assert [r.name for r in Accounts(data).reviewers()] == ["bob"]
    code = main(["reviewer", "list", "--data-dir", str(tmp_path / "nowhere")])
    assert code == 2 and "no data folder" in capsys.readouterr().err
    (data / "state" / "reviewers.json").write_text("{not json")
    code, _, err = run(monkeypatch, capsys, data, "list")
    assert code == 2 and "not JSON" in err


def test_passwords_typed_at_the_prompt_must_match(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    typed = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    code, _, err = run(monkeypatch, capsys, data, "add", "dave")
    assert code == 2 and "differ" in err and not Accounts(data).exists("dave")
    typed = iter([PASSWORD, PASSWORD])
    assert run(monkeypatch, capsys, data, "add", "dave")[0] == 0 and Accounts(data).verify("dave", PASSWORD)


def test_the_review_command_listens_on_this_machine_at_8050_by_default():
    args = build_parser().parse_args(["review"])
    assert (args.host, args.port) == ("127.0.0.1", 8050)


def test_the_cookie_key_comes_from_the_environment_or_a_file_made_once(tmp_path):
    key = "k" * 40
    assert review_secret(tmp_path, {"DATMAN_REVIEW_SECRET": key}) == key
    assert not secret_path(tmp_path).exists()
    with pytest.raises(SecretError, match="DATMAN_REVIEW_SECRET: .* at least 32"):
        review_secret(tmp_path, {"DATMAN_REVIEW_SECRET": "short"})
    made = review_secret(tmp_path, {})
    assert len(made) >= 32 and review_secret(tmp_path, {}) == made  # made once, then read back
    assert stat.S_IMODE(secret_path(tmp_path).stat().st_mode) == 0o600
    assert [p.name for p in secret_path(tmp_path).parent.iterdir()] == ["review_secret"]  # no temporary left
    secret_path(tmp_path).write_text("tiny\n")
    with pytest.raises(SecretError, match="review_secret: .* at least 32"):
        review_secret(tmp_path, {})
    if os.geteuid() != 0:  # root reads anything
        secret_path(tmp_path).chmod(0)
        with pytest.raises(SecretError, match="cannot be read"):
            review_secret(tmp_path, {})
