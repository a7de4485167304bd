"""The configuration layer: valid configs load with effective rules; every mistake is
reported with its file and exact line, all in one pass."""

import textwrap
from pathlib import Path

import pytest

from datman_flow.config import ConfigError, ConfigIssue, TagRule, check_config, load_config
from datman_flow.config.yaml_lines import parse_yaml

TAGS = """\
T1:    {qc: anat, description: T1-weighted anatomical}
RST:   {qc: fmri}
DTI60: {qc: dwi}
FMAP:  {qc: ignore}
"""

STUDY = """\
study: SPN01
xnat:
  url: http://xnat.example.org/
  project: SPINS
tags:
  T1:  {match: {SeriesDescription: 'T1'}, count: 1}
  RST: {match: {SeriesDescription: 'rest'}, count: 2}
sites:
  CMH:
    xnat_project: SPINS_CMH
    tags:
      T1:    {match: {SeriesDescription: 'Sag.?T1.BRAVO'}}
      DTI60: {match: {SeriesDescription: ['DTI.60', 'ep2d_diff'], ImageType: 'ORIGINAL'}, count: 2}
  ZHH:
  MRC: {}
"""


def make(tmp_path: Path, studies: dict[str, str], tags: str | None = TAGS) -> Path:
    root = tmp_path / "configs"
    (root / "studies").mkdir(parents=True)
    if tags is not None:
        (root / "tags.yml").write_text(textwrap.dedent(tags))
    for name, text in studies.items():
        (root / "studies" / name).write_text(textwrap.dedent(text))
    return root


def issues_of(root: Path, env=None) -> list[str]:
    return [str(issue) for issue in check_config(root, env={} if env is None else env)]


def test_valid_config_effective_rules(tmp_path):
    root = make(tmp_path, {"SPINS.yml": STUDY})
    assert check_config(root, env={}) == []
    config = load_config(root, env={})
    study = config.study("SPN01")
    assert study.name == "SPN01"  # defaults to the code
    assert study.source == root / "studies" / "SPINS.yml"
    assert study.xnat.url == "http://xnat.example.org"  # trailing '/' dropped
    assert study.xnat.project == "SPINS"
    cmh, zhh = config.site("SPN01", "CMH"), config.site("SPN01", "ZHH")
    assert cmh.xnat_project == "SPINS_CMH" and zhh.xnat_project == "SPINS"
    assert set(cmh.tags) == {"T1", "RST", "DTI60"}
    assert cmh.tags["T1"].match == {"SeriesDescription": ("Sag.?T1.BRAVO",)}  # whole rule replaced
    assert cmh.tags["RST"].count == 2  # inherited
    assert cmh.tags["DTI60"] == TagRule(tag="DTI60", count=2, match={
        "SeriesDescription": ("DTI.60", "ep2d_diff"), "ImageType": ("ORIGINAL",)})
    assert set(zhh.tags) == {"T1", "RST"} and zhh.tags["T1"].match == {"SeriesDescription": ("T1",)}
    assert config.site("SPN01", "MRC").tags.keys() == {"T1", "RST"}
    assert config.tags["T1"].description == "T1-weighted anatomical" and config.tags["RST"].description == ""
    assert config.tags["FMAP"].qc == "ignore"
    assert config.study("NOPE") is None and config.site("SPN01", "XXX") is None and config.site("X", "CMH") is None


def test_url_override_from_env(tmp_path, monkeypatch):
    root = make(tmp_path, {"SPINS.yml": STUDY})
    assert load_config(root, env={"DATMAN_XNAT_URL": "http://127.0.0.1:9999"}).study("SPN01").xnat.url \
        == "http://127.0.0.1:9999"
    monkeypatch.setenv("DATMAN_XNAT_URL", "https://other.example.org")  # os.environ read at call time
    assert load_config(root).study("SPN01").xnat.url == "https://other.example.org"
    monkeypatch.delenv("DATMAN_XNAT_URL")
    assert load_config(root).study("SPN01").xnat.url == "http://xnat.example.org"
    assert issues_of(root, {"DATMAN_XNAT_URL": "xnat:8080"}) == [
        "environment: DATMAN_XNAT_URL: 'xnat:8080' is not an http:// or https:// address"]


def test_xnat_projects_distinct_and_sorted(tmp_path):
    other = "study: AAA01\nname: Other\nxnat: {url: 'http://x', project: P2}\nsites: {S1: , S2: }\n"
    config = load_config(make(tmp_path, {"SPINS.yml": STUDY, "other.yaml": other}), env={})
    assert [(s.code, p) for s, p in config.xnat_projects()] == [
        ("AAA01", "P2"), ("SPN01", "SPINS"), ("SPN01", "SPINS_CMH")]
    assert config.study("AAA01").name == "Other"


def test_repository_example_config_loads():
    root = Path(__file__).resolve().parents[1] / "configs"
    config = load_config(root, env={})
    assert set(config.tags) == {"T1", "T2", "RST", "DTI60", "FMAP"}
    study = config.study("SPN01")
    assert study.name == "Social Processes Initiative" and study.xnat.url == "http://127.0.0.1:8080"
    cmh, zhh = config.site("SPN01", "CMH"), config.site("SPN01", "ZHH")
    assert (cmh.xnat_project, zhh.xnat_project) == ("SPINS_CMH", "SPINS_ZHH")
    assert cmh.tags["T1"].matches({"SeriesDescription": "Sag T1 BRAVO"})
    assert not cmh.tags["T1"].matches({"SeriesDescription": "Ax T1"})
    assert zhh.tags["T1"].matches({"SeriesDescription": "Ax T1"})
    assert cmh.tags["DTI60"].matches({"SeriesDescription": "ep2d_diff_mddw"})


def test_three_mistakes_in_one_file_reported_together(tmp_path):
    study = """\
    study: SPN01
    xnat:
      url: http://x
      projct: SPINS
    sites:
      CMH:
        tags:
          T2: {match: {SeriesDescription: 'T2'}}
          T1: {match: {SeriesDescription: 'Sag(T1'}, count: 1}
    """
    root = make(tmp_path, {"SPINS.yml": study})
    f = f"{root}/studies/SPINS.yml"
    assert issues_of(root) == [
        f"{f}:2: xnat: missing required key 'project'",
        f"{f}:4: unknown key 'projct' (did you mean 'project'?)",
        f"{f}:8: sites.CMH.tags: tag 'T2' is not in the registry tags.yml (did you mean 'T1'?)",
        f"{f}:9: sites.CMH.tags.T1.match.SeriesDescription: bad regex 'Sag(T1': "
        "missing ) at 'Sag(T1' (tag rules use RE2 syntax, which runs in linear time)",
    ]
    with pytest.raises(ConfigError) as caught:
        load_config(root, env={})
    assert len(caught.value.issues) == 4
    assert str(caught.value) == "\n".join(issues_of(root))


def test_errors_in_several_files_all_collected(tmp_path):
    tags = "T1: {qc: anatomy}\nRST: {qc: fmri, descripton: x}\nT_2: {qc: anat}\n"
    a = "study: A1\nxnat: {url: 'http://x', project: P}\nsites: {CMH: {tags: {T1: {match: {Foo: x}}}}}\n"
    b = "study: B1\nname: 5\nxnat: {url: 'ftp://x', project: 'a b'}\nsites: {}\n"
    root = make(tmp_path, {"a.yml": a, "b.yml": b}, tags=tags)
    t, fa, fb = f"{root}/tags.yml", f"{root}/studies/a.yml", f"{root}/studies/b.yml"
    assert issues_of(root) == [
        f"{t}:1: T1.qc: got 'anatomy'; expected 'anat', 'fmri', 'dwi' or 'ignore'",
        f"{t}:2: unknown key 'descripton' (did you mean 'description'?)",
        f"{t}:3: tag name 'T_2' must be letters and digits only (it is part of file names)",
        f"{fa}:3: sites.CMH.tags.T1.match: 'Foo' is not a DICOM keyword",
        f"{fb}:2: name: expected text, got number 5; put the value in quotes",
        f"{fb}:3: xnat.url: 'ftp://x' is not an http:// or https:// address",
        f"{fb}:3: xnat.project: XNAT project 'a b' must be letters, digits, '_' or '-'",
        f"{fb}:4: sites: must not be empty",
    ]


@pytest.mark.parametrize("text, line, message", [
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    tags:\n      T1: {match: {SeriesDescripton: a}}\n",
     6, "sites.CMH.tags.T1.match: 'SeriesDescripton' is not a DICOM keyword (did you mean 'SeriesDescription'?)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    tags:\n      T1:\n        match:\n"
     "          SeriesDescription:\n            - ok\n            - 'bad['\n",
     10, "sites.CMH.tags.T1.match.SeriesDescription[1]: bad regex 'bad[': "
         "missing ] at '[' (tag rules use RE2 syntax, which runs in linear time)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    tags:\n      T1: {match: {}}\n",
     6, "sites.CMH.tags.T1.match: must not be empty"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    tags:\n"
     "      T1: {match: {SeriesDescription: []}}\n",
     6, "sites.CMH.tags.T1.match.SeriesDescription: must not be empty"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\ntags:\n  T1:\n    match: {SeriesDescription: T1}\n"
     "    count: -1\nsites: {CMH: }\n", 6, "tags.T1.count: must be 0 or more, got number -1"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\ntags:\n  T1:\n    match: {SeriesDescription: T1}\n"
     "    count: two\nsites: {CMH: }\n", 6, "tags.T1.count: expected a whole number, got 'two'"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\ntags:\n  T1:\n    match: {SeriesDescription: T1}\n"
     "    cont: 2\nsites: {CMH: }\n", 6, "unknown key 'cont' (did you mean 'count'?)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    tag: {}\n",
     5, "unknown key 'tag' (did you mean 'tags'?)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n  PHA:\n",
     5, "sites: site code 'PHA' is reserved for phantom scan IDs"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  C-MH:\n",
     4, "sites: site code 'C-MH' must be letters and digits only (it is part of every scan ID)"),
    ("study: SPN_01\nxnat: {url: 'http://x', project: P}\nsites: {CMH: }\n",
     1, "study: study code 'SPN_01' must be letters and digits only (it is part of every scan ID)"),
    ("\n\nstudy: SPN01\nsites: {CMH: }\n", 3, "missing required key 'xnat'"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nheader_chek: {}\nsites: {CMH: }\n",
     3, "unknown key 'header_chek' (did you mean 'header_check'?)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n    header_check: {tolerance: {EchoTme: 1}}\n",
     5, "sites.CMH.header_check.tolerance: 'EchoTme' is not a scanner parameter the header check knows (did you mean 'EchoTime'?)"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites: {CMH: {tags: {XYZ: {match: {Modality: MR}}}}}\n",
     3, "sites.CMH.tags: tag 'XYZ' is not in the registry tags.yml"),
    ("study: SPN01\nxnat: {url: 'http://x', project: P}\nsites:\n  CMH:\n  CMH:\n",
     5, "sites: duplicate key 'CMH' (first given at line 4)"),
    ("study: SPN01\nxnat:\n  url: http://x\n  project: [P\nsites: {CMH: }\n",
     5, "YAML syntax error: "),
    ("study: SPN01\n  xnat: x\n", 2, "YAML syntax error: mapping values are not allowed here"),
])
def test_one_mistake_exact_line(tmp_path, text, line, message):
    root = make(tmp_path, {"S.yml": text})
    issues = check_config(root, env={})
    assert len(issues) == 1, issues
    assert issues[0].file == f"{root}/studies/S.yml"
    assert issues[0].line == line
    assert issues[0].message.startswith(message)
    if "not in the registry" in message:
        assert "did you mean" not in issues[0].message


def test_duplicate_keys_in_registry_and_study_code(tmp_path):
    tags = "T1: {qc: anat}\nRST: {qc: fmri}\nT1: {qc: anat}\n"
    a = "study: SPN01\nxnat: {url: 'http://x', project: P}\nsites: {CMH: }\n"
    b = "# copy\nstudy: SPN01\nxnat: {url: 'http://x', project: P}\nsites: {ZHH: }\n"
    root = make(tmp_path, {"a.yml": a, "b.yml": b}, tags=tags)
    assert issues_of(root) == [
        f"{root}/tags.yml:3: duplicate key 'T1' (first given at line 1)",
        f"{root}/studies/b.yml:2: study: study code 'SPN01' is already used by {root}/studies/a.yml",
    ]


def test_missing_files_and_folders(tmp_path):
    root = make(tmp_path, {}, tags=None)
    assert issues_of(root) == [
        f"{root}/tags.yml: file not found; the tag registry lists every tag the lab uses, e.g. 'T1: {{qc: anat}}'",
        f"{root}/studies: no study files (*.yml or *.yaml) found",
    ]
    assert issues_of(tmp_path / "nowhere") == [f"{tmp_path}/nowhere: configuration folder not found"]
    (root / "studies" / "empty.yml").write_text("# nothing yet\n")
    (root / "studies" / ".hidden.yml").write_text("not: [valid\n")
    (root / "studies" / "notes.txt").write_text("ignored")
    assert issues_of(root)[1] == f"{root}/studies/empty.yml: file is empty; a study file needs study:, xnat: and sites:"
    assert len(issues_of(root)) == 2


def test_relative_config_dir_gives_relative_paths(tmp_path, monkeypatch):
    make(tmp_path, {"S.yml": "study: S1\nxnat: {url: 'http://x', project: P}\nsites: {C-1: }\n"})
    monkeypatch.chdir(tmp_path)
    assert [str(i) for i in check_config(Path("configs"), env={})] == [
        "configs/studies/S.yml:3: sites: site code 'C-1' must be letters and digits only (it is part of every scan ID)"]


def test_config_issue_and_error_text():
    a, b = ConfigIssue("x.yml", 3, "bad"), ConfigIssue("dir", None, "missing")
    assert (str(a), str(b)) == ("x.yml:3: bad", "dir: missing")
    error = ConfigError([a, b])
    assert error.issues == [a, b] and str(error) == "x.yml:3: bad\ndir: missing"


def test_yaml_lines_map_and_keys_kept_as_text():
    doc, issues = parse_yaml("a:\n  ON: 1\n  '01': [x,\n    y]\nb:\n  - k: 2\n", "f.yml")
    assert issues == []
    assert doc.data == {"a": {"ON": 1, "01": ["x", "y"]}, "b": [{"k": 2}]}
    assert doc.lines[("a", "ON")] == 2 and doc.lines[("a", "01", 1)] == 4 and doc.lines[("b", 0, "k")] == 6
    assert doc.line(("a", "01", 5, "missing")) == 3  # falls back to the closest ancestor


def test_yaml_merge_keys_and_bad_values_refused():
    doc, issues = parse_yaml("base: {x: 1}\nother:\n  <<: {x: 1}\n  y: !!int nope\n", "f.yml")
    assert [str(i) for i in issues] == [
        "f.yml:3: other: merge keys ('<<') are not supported; write the keys out",
        "f.yml:4: other.y: cannot read value 'nope': invalid literal for int() with base 10: 'nope'",
    ]  # anchors and aliases, which merge keys usually go with, are refused: test_config_safety.py
    assert parse_yaml("a: 1\n---\nb: 2\n", "f.yml")[0] is None  # one document per file


def test_tag_rule_matches_semantics():
    rule = TagRule(tag="DTI60", match={"SeriesDescription": ["DTI.60", "ep2d_diff"], "ImageType": "ORIGINAL"})
    assert rule.count == 1 and rule.names_image_type
    assert rule.matches({"SeriesDescription": "axial dti_60 dir", "ImageType": "original\\primary"})  # search, any case
    assert rule.matches({"SeriesDescription": "EP2D_DIFF", "ImageType": "ORIGINAL"})  # second pattern
    assert not rule.matches({"SeriesDescription": "EP2D_DIFF", "ImageType": "DERIVED"})  # all keys must match
    assert not rule.matches({"SeriesDescription": "T1"})  # missing ImageType is '' -> no hit
    assert not rule.matches({})
    empty_ok = TagRule(tag="T1", match={"SeriesDescription": "T1", "ProtocolName": "^$"})
    assert empty_ok.matches({"SeriesDescription": "T1"}) and not empty_ok.names_image_type
    anchored = TagRule(tag="T1", match={"SeriesDescription": "^T1$"})
    assert anchored.matches({"SeriesDescription": "t1"}) and not anchored.matches({"SeriesDescription": "T1 post"})


def test_tag_rule_validation():
    with pytest.raises(ValueError, match="bad regex 'a\\(': missing \\)"):
        TagRule(tag="T1", match={"SeriesDescription": "a("})
    with pytest.raises(ValueError, match="match must name at least one"):
        TagRule(tag="T1", match={})
    with pytest.raises(ValueError):
        TagRule(tag="T1", match={"SeriesDescription": "x"}, count=-1)
    lazy = TagRule.model_construct(tag="T1", match={"SeriesDescription": ("t1",)}, count=1)
    assert lazy.matches({"SeriesDescription": "T1w"})


def test_phantom_rules_inherit_and_default_to_the_ordinary_rules(tmp_path):
    with_phantoms = STUDY.replace("sites:\n", "phantom_tags:\n  T1: {match: {SeriesDescription: 'phantom'}}\nsites:\n")
    with_phantoms = with_phantoms.replace("  ZHH:\n", "  ZHH:\n    phantom_tags:\n      FMAP: {match: {SeriesDescription: 'B0'}}\n")
    config = load_config(make(tmp_path, {"SPINS.yml": with_phantoms}), env={})
    cmh, zhh = config.site("SPN01", "CMH"), config.site("SPN01", "ZHH")
    assert set(cmh.rules_for(is_phantom=True)) == {"T1"}
    assert set(zhh.rules_for(is_phantom=True)) == {"T1", "FMAP"}
    assert cmh.rules_for(is_phantom=False) == cmh.tags
    plain = load_config(make(tmp_path / "plain", {"SPINS.yml": STUDY}), env={})
    assert plain.site("SPN01", "CMH").rules_for(is_phantom=True) == plain.site("SPN01", "CMH").tags


def test_unknown_phantom_tag_is_refused_with_its_line(tmp_path):
    text = STUDY.replace("sites:\n", "phantom_tags:\n  T7: {match: {SeriesDescription: 'x'}}\nsites:\n")
    issues = issues_of(make(tmp_path, {"SPINS.yml": text}))
    assert len(issues) == 1 and ":9:" in issues[0] and "T7" in issues[0]


@pytest.mark.parametrize("tags, line, message", [
    ("T1: {qc: anat, bids: {datatype: anat, suffix: T1W}}\n", 1,
     "T1.bids: suffix 'T1W' is not a BIDS anat suffix; one of: "),
    ("T1: {qc: anat}\nRST:\n  qc: fmri\n  bids: {datatype: func, suffix: bold}\n", 4,
     "RST.bids: a func bold needs task: (e.g. task: rest), BIDS requires it"),
    ("T1: {qc: anat, bids: {datatype: anat, suffix: T1w, acq: 'mp-rage'}}\n", 1,
     "T1.bids: acq 'mp-rage' must be letters and digits only (a BIDS label)"),
    ("T1: {qc: anat, bids: {datatype: anatomy, suffix: T1w}}\n", 1, "T1.bids.datatype: got 'anatomy'; expected "),
    ("T1: {qc: anat, bids: {datatype: anat, suffix: T1w, task: rest}}\n", 1, "T1.bids: task: belongs to func"),
    ("F: {qc: ignore, bids: {datatype: anat, suffix: T1w, intended_for: [func]}}\n", 1,
     "F.bids: intended_for: belongs to fmap series only"),
    ("F: {qc: ignore, bids: {datatype: fmap, suffix: epi, intended_for: [beh]}}\n", 1,
     "F.bids.intended_for[0]: got 'beh'; expected "),
    ("T1: {qc: anat, bids: {datatype: anat, suffix: T1w, run: 1}}\n", 1, "unknown key 'run'"),
])
def test_a_bad_bids_mapping_is_refused_with_its_line(tmp_path, tags, line, message):
    root = make(tmp_path, {"S.yml": "study: SPN01\nxnat: {url: 'http://x', project: P}\nsites: {CMH: }\n"}, tags)
    issues = check_config(root, env={})
    assert [(i.file, i.line) for i in issues] == [(f"{root}/tags.yml", line)], issues
    assert issues[0].message.startswith(message), issues[0].message


@pytest.mark.parametrize("block, line, message", [
    ("bids: {scan_dates: shift}\n", 3, "bids: scan_dates: shift needs date_shift_days: a non-zero whole number"),
    ("bids:\n  scan_dates: remove\n  date_shift_days: 10\n", 3, "bids: date_shift_days is used only with"),
    ("bids:\n  scan_dates: blur\n", 4, "bids.scan_dates: got 'blur'; expected 'remove', 'shift' or 'keep'"),
    ("bids:\n  require_signoff: false\n", 4, "unknown key 'require_signoff' (did you mean 'require_sign_off'?)"),
])
def test_a_bad_study_bids_block_is_refused_with_its_line(tmp_path, block, line, message):
    root = make(tmp_path, {"S.yml": "study: SPN01\nxnat: {url: 'http://x', project: P}\n" + block + "sites: {CMH: }\n"})
    issues = check_config(root, env={})
    assert [(i.line, i.message[: len(message)]) for i in issues] == [(line, message)], issues


def test_the_bids_settings_reach_the_study_and_the_tags(tmp_path):
    tags = "T1: {qc: anat, bids: {datatype: anat, suffix: T1w, acq: mprage}}\nFM: {qc: ignore, bids: " \
           "{datatype: fmap, suffix: epi, dir: AP}}\nLOC: {qc: ignore}\n"
    root = make(tmp_path, {"S.yml": "study: SPN01\nxnat: {url: 'http://x', project: P}\nbids: {scan_dates: keep, "
                                     "require_sign_off: false, authors: [A. Person]}\nsites: {CMH: }\n"}, tags)
    config = load_config(root, env={})
    assert config.tags["T1"].bids.acq == "mprage" and config.tags["LOC"].bids is None
    assert config.tags["FM"].bids.targets == ("func", "dwi")  # a field map's IntendedFor by default
    bids = config.studies["SPN01"].bids
    assert (bids.scan_dates, bids.require_sign_off, bids.authors) == ("keep", False, ["A. Person"])
    assert load_config(make(tmp_path / "b", {"S.yml": STUDY})).studies["SPN01"].bids.require_sign_off is True
