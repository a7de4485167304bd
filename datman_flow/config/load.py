"""Reading the config folder: tags.yml and studies/*.yml -> LabConfig, or every problem.

The files are validated against strict "file schema" models (below, private) so that every
mistake in every file is reported in one pass with its file and line; the public models of
`models.py` are then built from the validated files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError
from pydicom.datadict import keyword_dict

from datman_flow.config.bids_block import BidsMapping, BidsStudy
from datman_flow.config.errors import ConfigError, ConfigIssue, issues_from_validation
from datman_flow.config.models import LabConfig, SiteConfig, StudyConfig, TagInfo, TagQc, TagRule, XnatConfig
from datman_flow.config.outliers import QcOutliersYaml, effective_outliers
from datman_flow.config.patterns import PatternError, compile_pattern
from datman_flow.config.qc_block import QcYaml
from datman_flow.config.runs_block import load_runs
from datman_flow.config.yaml_lines import read_yaml
from datman_flow.drift.settings import HeaderCheckYaml
from datman_flow.naming import PHANTOM, is_code
from datman_flow.suggest import did_you_mean

URL_ENV = "DATMAN_XNAT_URL"
TAGS_FILE = "tags.yml"
STUDIES_DIR = "studies"
_XNAT_ID = re.compile(r"[A-Za-z0-9_-]+")


# ---- checks used by the file schema -------------------------------------------------------

def _fail(reason: str) -> PydanticCustomError:
    return PydanticCustomError("config", "{reason}", {"reason": reason})


def _study_code(value: str) -> str:
    if not is_code(value):
        raise _fail(f"study code '{value}' must be letters and digits only (it is part of every scan ID)")
    return value


def _site_code(value: str) -> str:
    if not is_code(value):
        raise _fail(f"site code '{value}' must be letters and digits only (it is part of every scan ID)")
    if value == PHANTOM:
        raise _fail(f"site code '{PHANTOM}' is reserved for phantom scan IDs")
    return value


def _tag_name(value: str) -> str:
    if not is_code(value):
        raise _fail(f"tag name '{value}' must be letters and digits only (it is part of file names)")
    return value


def _known_tag(value: str, info: ValidationInfo) -> str:
    registry = (info.context or {}).get("registry")
    if registry is not None and value not in registry:
        hint = did_you_mean(value, registry, cutoff=0.5)
        raise _fail(f"tag '{value}' is not in the registry {TAGS_FILE}{hint}")
    return value


def _keyword(value: str) -> str:
    if value not in keyword_dict:
        raise _fail(f"'{value}' is not a DICOM keyword{did_you_mean(value, keyword_dict)}")
    return value


def _regex(value: str) -> str:
    try:
        compile_pattern(value)
    except PatternError as exc:
        raise _fail(f"bad regex '{value}': {exc}") from None
    return value


def _url(value: str) -> str:
    if "@" in value:  # user[:password]@ (never echoed: the message reaches logs and the UI)
        raise _fail(f"'{_hide_userinfo(value)}' holds credentials; give them in the environment variables "
                    "XNAT_USER and XNAT_PASS, never in the address")
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(f"'{value}' is not an http:// or https:// address")
    return value.rstrip("/")


def _hide_userinfo(url: str) -> str:
    """'http://user:pass@host/x' -> 'http://***@host/x' (everything up to the last '@')."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme + sep if sep and '@' not in scheme else ''}***@{url.rpartition('@')[2]}"


def _xnat_id(value: str) -> str:
    if not _XNAT_ID.fullmatch(value):
        raise _fail(f"XNAT project '{value}' must be letters, digits, '_' or '-'")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# ---- the file schema ------------------------------------------------------------------------

_SCHEMA = ConfigDict(extra="forbid", strict=True, frozen=True)
Regex = Annotated[str, AfterValidator(_regex)]
Keyword = Annotated[str, AfterValidator(_keyword)]
RuleTag = Annotated[str, AfterValidator(_known_tag)]


class _TagEntry(BaseModel):
    model_config = _SCHEMA
    qc: TagQc
    description: str = ""
    bids: BidsMapping | None = None


class _Rule(BaseModel):
    model_config = _SCHEMA
    match: Annotated[dict[Keyword, Annotated[list[Regex], BeforeValidator(_one_or_many), Field(min_length=1)]],
                     Field(min_length=1)]
    count: int = Field(1, ge=0)
    header_check: HeaderCheckYaml | None = None


class _Xnat(BaseModel):
    model_config = _SCHEMA
    url: Annotated[str, AfterValidator(_url)]
    project: Annotated[str, AfterValidator(_xnat_id)]
    require_digest: bool = False


class _Site(BaseModel):
    model_config = _SCHEMA
    xnat_project: Annotated[str, AfterValidator(_xnat_id)] | None = None
    tags: dict[RuleTag, _Rule] | None = None
    phantom_tags: dict[RuleTag, _Rule] | None = None
    header_check: HeaderCheckYaml | None = None
    qc_outliers: QcOutliersYaml | None = None


class _Study(BaseModel):
    model_config = _SCHEMA
    study: Annotated[str, AfterValidator(_study_code)]
    name: str | None = None
    xnat: _Xnat
    tags: dict[RuleTag, _Rule] | None = None
    phantom_tags: dict[RuleTag, _Rule] | None = None
    header_check: HeaderCheckYaml | None = None
    qc_outliers: QcOutliersYaml | None = None
    qc: QcYaml | None = None
    bids: BidsStudy | None = None
    sites: Annotated[dict[Annotated[str, AfterValidator(_site_code)], _Site | None], Field(min_length=1)]


_Registry = dict[Annotated[str, AfterValidator(_tag_name)], _TagEntry]
_REGISTRY = TypeAdapter(_Registry, config=ConfigDict(strict=True))


# ---- loading ----------------------------------------------------------------------------------

def load_config(config_dir: Path | str, env: Mapping[str, str] | None = None) -> LabConfig:
    """The lab configuration, or ConfigError listing every problem (file:line: message)."""
    config, issues = _load(Path(config_dir), os.environ if env is None else env)
    if issues or config is None:
        raise ConfigError(issues)
    return config


def check_config(config_dir: Path | str, env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """Every problem of the configuration; an empty list means it is valid."""
    return _load(Path(config_dir), os.environ if env is None else env)[1]


def _load(config_dir: Path, env: Mapping[str, str]) -> tuple[LabConfig | None, list[ConfigIssue]]:
    if not config_dir.is_dir():
        return None, [ConfigIssue(str(config_dir), None, "configuration folder not found")]
    tags, names, issues = _load_registry(config_dir / TAGS_FILE)
    url = env.get(URL_ENV) or None
    if url is not None:
        try:
            url = _url(url)
        except PydanticCustomError as exc:
            issues.append(ConfigIssue("environment", None, f"{URL_ENV}: {exc.context['reason']}"))
    studies: dict[str, StudyConfig] = {}
    taken: dict[str, str] = {}  # study code -> file that uses it
    studies_dir = config_dir / STUDIES_DIR
    files = _study_files(studies_dir)
    if not files:
        issues.append(ConfigIssue(str(studies_dir), None, "no study files (*.yml or *.yaml) found"))
    for path in files:
        study, file_issues = _load_study(path, names, url, taken)
        issues.extend(file_issues)
        if study is not None:
            studies[study.code] = study
    runs, run_issues = load_runs(config_dir, env)
    issues.extend(run_issues)
    if issues:
        return None, issues
    return LabConfig(config_dir=config_dir, tags=tags, studies=studies, runs=runs), []


def _study_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yml", ".yaml") and not p.name.startswith(".") and p.is_file())


def _sorted(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda issue: issue.line or 0)


def _load_registry(path: Path) -> tuple[dict[str, TagInfo], set[str] | None, list[ConfigIssue]]:
    """Tag infos, the tag names written in the file (used to check rules even when some
    entries are wrong; None when unreadable), and the issues."""
    doc, issues = read_yaml(path)
    if doc is None:
        if not path.exists():
            issues = [ConfigIssue(str(path), None, "file not found; the tag registry lists every tag "
                                                    "the lab uses, e.g. 'T1: {qc: anat}'")]
        return {}, None, issues
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        return {}, None, issues + [ConfigIssue(doc.file, doc.line(()), "expected one 'TAG: {qc: ...}' "
                                                                       "line per tag at the top level")]
    try:
        entries = _REGISTRY.validate_python(data)
    except ValidationError as exc:
        return {}, set(data), _sorted(issues + issues_from_validation(exc, doc, _Registry))
    tags = {name: TagInfo(name=name, qc=e.qc, description=e.description, bids=e.bids) for name, e in entries.items()}
    return tags, set(data), _sorted(issues)


def _load_study(path: Path, registry: set[str] | None, url: str | None,
                taken: dict[str, str]) -> tuple[StudyConfig | None, list[ConfigIssue]]:
    doc, issues = read_yaml(path)
    if doc is None:
        return None, issues
    if not isinstance(doc.data, dict):
        what = "file is empty" if doc.data is None else "expected 'key: value' lines at the top level"
        return None, issues + [ConfigIssue(doc.file, doc.line(()), f"{what}; a study file needs "
                                                                   "study:, xnat: and sites:")]
    code = doc.data.get("study")
    if isinstance(code, str):
        if code in taken:
            issues.append(ConfigIssue(doc.file, doc.line(("study",)),
                                      f"study: study code '{code}' is already used by {taken[code]}"))
        else:
            taken[code] = doc.file
    try:
        raw = _Study.model_validate(doc.data, context={"registry": registry})
    except ValidationError as exc:
        return None, _sorted(issues + issues_from_validation(exc, doc, _Study))
    return _build_study(raw, path, url), _sorted(issues)


def _effective_rules(study: dict[str, _Rule] | None, site: dict[str, _Rule] | None) -> dict[str, TagRule]:
    """Study-level rules, replaced tag by tag by the site's."""
    rules = {**(study or {}), **(site or {})}
    return {tag: TagRule(tag=tag, match=rule.match, count=rule.count, header_check=rule.header_check)
            for tag, rule in rules.items()}


def _build_study(raw: _Study, path: Path, url: str | None) -> StudyConfig:
    sites = {}
    for code, site in raw.sites.items():
        site = site or _Site()
        phantom = None
        if raw.phantom_tags is not None or site.phantom_tags is not None:
            phantom = _effective_rules(raw.phantom_tags, site.phantom_tags)
        sites[code] = SiteConfig(
            code=code,
            xnat_project=site.xnat_project or raw.xnat.project,
            tags=_effective_rules(raw.tags, site.tags),
            phantom_tags=phantom,
            header_check=site.header_check,
            qc_outliers=effective_outliers(raw.qc_outliers, site.qc_outliers),
        )
    return StudyConfig(code=raw.study, name=raw.name or raw.study, source=path, header_check=raw.header_check,
                       qc_outliers=effective_outliers(raw.qc_outliers), qc=(raw.qc or QcYaml()).settings(),
                       bids=raw.bids or BidsStudy(),
                       xnat=XnatConfig(url=url or raw.xnat.url, project=raw.xnat.project,
                                       require_digest=raw.xnat.require_digest), sites=sites)

