"""What a study lead's YAML can send and must not get through: a regex that backtracks forever,
an alias bomb, a file too big to be a configuration, a password in the XNAT address.

The tests that would hang or eat memory on a regression run in a child interpreter with a deadline
and a cap on its address space, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from datman_flow.config import TagRule, check_config, load_config, yaml_lines
from datman_flow.config.yaml_lines import parse_yaml, read_yaml

REPO = Path(__file__).resolve().parents[1]
TAGS = "T1: {qc: anat}\nRST: {qc: fmri}\n"
XNAT = "xnat: {url: 'http://x', project: P}\n"


def make(tmp_path: Path, study: str, tags: str = TAGS) -> Path:
    root = tmp_path / "configs"
    (root / "studies").mkdir(parents=True)
    (root / "tags.yml").write_text(tags)
    (root / "studies" / "S.yml").write_text(study)
    return root


def run_bounded(code: str, *, seconds: float = 30, memory: int = 1 << 30) -> object:
    """Run `code` in a fresh interpreter, killed after `seconds` and refused more than `memory`
    bytes of address space; returns the JSON value it prints."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                              timeout=seconds, env=env, preexec_fn=cap, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {seconds} s: a hang")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# ---- 1. tag-rule regexes run in linear time (RE2) -------------------------------------------------

def test_catastrophic_regex_passes_check_and_tags_within_a_second(tmp_path):
    root = make(tmp_path, f"study: S1\n{XNAT}tags:\n  T1: {{match: {{SeriesDescription: '(a+)+$'}}}}\nsites: {{CMH: }}\n")
    assert check_config(root, env={}) == []
    reason, seconds = run_bounded(f"""
        import json, time
        from datman_flow.config import load_config
        from datman_flow.dicom.headers import SeriesHeader
        from datman_flow.dicom.tagging import tag_series
        rules = load_config({str(root)!r}, env={{}}).site("S1", "CMH").tags
        header = SeriesHeader(fields={{"SeriesDescription": "a" * 50 + "!", "Modality": "MR", "Rows": "64"}},
                              number_of_frames=1)
        started = time.monotonic()
        decision = tag_series(header, rules)
        print(json.dumps([decision.reason, time.monotonic() - started]))
    """)
    assert reason == "no rule matched" and seconds < 1.0


def test_tag_rule_matches_in_linear_time_when_built_directly():
    seconds = run_bounded("""
        import json, time
        from datman_flow.config import TagRule
        rule = TagRule(tag="T1", match={"SeriesDescription": "(x+x+)+y"})
        started = time.monotonic()
        assert not rule.matches({"SeriesDescription": "x" * 5000})
        print(json.dumps(time.monotonic() - started))
    """)
    assert seconds < 1.0


@pytest.mark.parametrize("pattern, why", [
    (r"(a)\1", r"backreferences (\1) are not supported"),
    ("(?P<x>a)(?P=x)", "backreferences (?P=name) are not supported"),
    ("T1(?=w)", "lookahead (?=...) is not supported"),
    ("(?!T2)T", "negative lookahead (?!...) is not supported"),
    ("(?<=Sag )T1", "lookbehind (?<=...) is not supported"),
    ("(?<!Ax )T1", "negative lookbehind (?<!...) is not supported"),
    ("(?>a+)b", "atomic groups (?>...) are not supported"),
    ("a++", "possessive quantifiers (++, *+, ?+) are not supported"),
])
def test_pattern_re2_cannot_run_is_refused_with_file_line_and_why(tmp_path, pattern, why):
    study = f"study: S1\n{XNAT}sites:\n  CMH:\n    tags:\n      T1:\n        match:\n          SeriesDescription: '{pattern}'\n"
    root = make(tmp_path, study)
    assert [str(i) for i in check_config(root, env={})] == [
        f"{root}/studies/S.yml:8: sites.CMH.tags.T1.match.SeriesDescription: bad regex '{pattern}': "
        f"{why}: tag rules use RE2 syntax, which runs in linear time"]
    with pytest.raises(ValueError, match="not supported"):
        TagRule(tag="T1", match={"SeriesDescription": pattern})


def test_re2_keeps_the_search_semantics():
    rule = TagRule(tag="T1", match={"SeriesDescription": ["^sag.?t1", r"\bMPRAGE$"], "Modality": "mr"})
    assert rule.matches({"SeriesDescription": "SAG-T1 BRAVO", "Modality": "MR"})  # search, any case
    assert rule.matches({"SeriesDescription": "T1w mprage", "Modality": "MR"})
    assert not rule.matches({"SeriesDescription": "Ax Sag T1", "Modality": "MR"})  # ^ pins the start
    assert not rule.matches({"SeriesDescription": "Sag T1", "Modality": "CT"})
    assert TagRule(tag="T1", match={"SeriesDescription": "é"}).matches({"SeriesDescription": "RÉSUMÉ"})
    assert not TagRule(tag="T1", match={"SeriesDescription": "x"}).matches({"SeriesDescription": "\ud800"})
    assert pickle.loads(pickle.dumps(rule)) == rule  # compiled patterns compare by their text


# ---- 2. YAML: no aliases, no monsters ----------------------------------------------------------------

LAUGHS = "a: &a [" + ",".join(['"lol"'] * 10) + "]\n" + "".join(  # 10**9 'lol's once expanded
    f"{n}: &{n} [" + ",".join([f"*{p}"] * 10) + "]\n" for p, n in zip("abcdefgh", "bcdefghi"))


def test_billion_laughs_is_refused_fast_and_small(tmp_path):
    assert len(LAUGHS) < 1024
    root = make(tmp_path, f"study: S1\n{XNAT}sites: {{CMH: }}\n{LAUGHS}")
    issues, seconds, grown = run_bounded(f"""
        import json, resource, time
        from datman_flow.config import check_config
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        issues = [str(i) for i in check_config({str(root)!r}, env={{}})]
        seconds = time.monotonic() - started
        print(json.dumps([issues, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before]))
    """)
    assert issues == [f"{root}/studies/S.yml:4: YAML aliases (&name / *name) are not allowed in configuration "
                      "files: '&a' here (and 88 more anchors or aliases); write the values out"]
    assert seconds < 1.0 and grown < 50_000  # kB


def test_alias_and_anchor_lines_without_expanding():
    doc, issues = parse_yaml("x: 1\ny: *nowhere\n", "f.yml")
    assert doc is None and [str(i) for i in issues] == [
        "f.yml:2: YAML aliases (&name / *name) are not allowed in configuration files: '*nowhere' here; "
        "write the values out"]
    doc, issues = parse_yaml("x: &one 1\n", "f.yml")
    assert doc is None and issues[0].line == 1 and "'&one'" in issues[0].message


def test_deep_nesting_is_refused_not_a_crash():
    doc, issues = parse_yaml("a:\n  b: " + "[" * 5000 + "]" * 5000 + "\n", "f.yml")
    assert doc is None and len(issues) == 1
    assert str(issues[0]).startswith("f.yml:2: nested more than ")


def test_oversized_file_is_refused_unread(tmp_path):
    root = make(tmp_path, f"study: S1\n{XNAT}sites: {{CMH: }}\n")
    big = root / "studies" / "huge.yml"
    with big.open("wb") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB on paper, nothing on disk
    issues, seconds = run_bounded(f"""
        import json, time
        from datman_flow.config import check_config
        started = time.monotonic()
        print(json.dumps([[str(i) for i in check_config({str(root)!r}, env={{}})], time.monotonic() - started]))
    """, memory=1 << 30)
    assert issues == [f"{big}: too large for a configuration file: 8,589,934,592 bytes "
                      f"(the limit is {yaml_lines.MAX_BYTES:,} bytes)"]
    assert seconds < 1.0


def test_size_limit_edge_and_special_files(tmp_path, monkeypatch):
    monkeypatch.setattr(yaml_lines, "MAX_BYTES", 100)
    edge = tmp_path / "edge.yml"
    edge.write_text("a: 1\n" + "#" * 94 + "\n")
    assert edge.stat().st_size == 100 and read_yaml(edge)[1] == []
    edge.write_text(edge.read_text() + "\n")
    assert "too large" in str(read_yaml(edge)[1][0])
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    assert [str(i) for i in read_yaml(fifo)[1]] == [f"{fifo}: not a regular file"]


# ---- 3. no credentials in the XNAT address ------------------------------------------------------

def test_credentials_in_study_url_refused_without_echoing_the_password(tmp_path):
    root = make(tmp_path, "study: S1\nxnat:\n  url: 'https://alice:s3cret@xnat.example.org/'\n  project: P\nsites: {CMH: }\n")
    issues = [str(i) for i in check_config(root, env={})]
    assert issues == [f"{root}/studies/S.yml:3: xnat.url: 'https://***@xnat.example.org/' holds credentials; "
                      "give them in the environment variables XNAT_USER and XNAT_PASS, never in the address"]


@pytest.mark.parametrize("url", ["http://bob:s3cret@127.0.0.1:9999", "http://s3cret@h", "http://u:s3/cret@h",
                                 "ftp://u:s3cret@h", "http://u:s3cret@[::1",
                                 "u:s3cret@h", "u:s3cret@h://x"])
def test_credentials_in_env_url_refused_without_echoing_the_password(tmp_path, url):
    root = make(tmp_path, f"study: S1\n{XNAT}sites: {{CMH: }}\n")
    issues = [str(i) for i in check_config(root, env={"DATMAN_XNAT_URL": url})]
    assert len(issues) == 1 and issues[0].startswith("environment: DATMAN_XNAT_URL: '")
    assert "s3" not in issues[0] and "cret" not in issues[0] and "***@" in issues[0] and "XNAT_USER" in issues[0]
    assert load_config(root, env={"DATMAN_XNAT_URL": "http://127.0.0.1:9999/"}).study("S1").xnat.url \
        == "http://127.0.0.1:9999"
