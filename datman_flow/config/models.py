"""The validated lab configuration, as the rest of the code sees it.

These are the *effective* settings: study-level tag rules already inherited by each site,
each site's XNAT project already resolved, the DATMAN_XNAT_URL override already applied.
`load.py` builds them from the YAML files (and does the file-level checking there).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, model_validator

from datman_flow.config.bids_block import BidsMapping, BidsStudy
from datman_flow.config.patterns import Pattern, PatternError, compile_pattern
from datman_flow.config.runs_block import RunSettings
from datman_flow.drift.settings import HeaderCheckSettings, HeaderCheckYaml, merge
from datman_flow.qc.kinds import QCKind
from datman_flow.qc.settings import DEFAULT_QC, QcSettings

# a tag's `qc:` value: a QC kind of the registry (qc/kinds.py), or ignore (converted, never measured)
TagQc = Literal[(*get_args(QCKind), "ignore")]  # type: ignore[valid-type]
_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _as_tuple(value: Any) -> Any:
    """A single pattern may be given as a string."""
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


Patterns = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


class TagInfo(BaseModel):
    """One entry of the tag registry (tags.yml)."""

    model_config = _FROZEN
    name: str
    qc: TagQc
    description: str = ""
    bids: BidsMapping | None = None  # where its series go in a BIDS release; None: not exported


class TagRule(BaseModel):
    """How a site recognises the series of one tag, and how many a session should have."""

    model_config = _FROZEN
    tag: str
    match: dict[str, Patterns]  # DICOM keyword -> RE2 regexes (any of them)
    count: int = Field(1, ge=0)
    header_check: HeaderCheckYaml | None = None  # this tag's header_check layer
    _compiled: dict[str, tuple[Pattern, ...]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _compile(self) -> TagRule:
        self._compiled = self._compile_patterns()
        return self

    def _compile_patterns(self) -> dict[str, tuple[Pattern, ...]]:
        if not self.match:
            raise ValueError(f"rule for {self.tag}: match must name at least one DICOM field")
        compiled = {}
        for keyword, patterns in self.match.items():
            if not patterns:
                raise ValueError(f"rule for {self.tag}: match.{keyword} needs at least one pattern")
            compiled[keyword] = tuple(self._compile_one(keyword, p) for p in patterns)
        return compiled

    def _compile_one(self, keyword: str, pattern: str) -> Pattern:
        try:
            return compile_pattern(pattern)
        except PatternError as exc:
            raise ValueError(f"rule for {self.tag}: match.{keyword}: bad regex '{pattern}': {exc}") from None

    def matches(self, fields: Mapping[str, Any]) -> bool:
        """True when every matched field (missing -> '') is found by any of its patterns
        (a case-insensitive search, in linear time: config/patterns.py)."""
        if self._compiled is None:  # built with model_construct(): compile on first use
            self._compiled = self._compile_patterns()
        for keyword, patterns in self._compiled.items():
            value = fields.get(keyword)
            text = "" if value is None else value if isinstance(value, str) else str(value)
            if not any(pattern.search(text) for pattern in patterns):
                return False
        return True

    @property
    def names_image_type(self) -> bool:
        return "ImageType" in self.match


class XnatConfig(BaseModel):
    model_config = _FROZEN
    url: str
    project: str
    # refuse scans XNAT lists without MD5 digests (sites with checksums off), instead of
    # verifying them by size and file count only
    require_digest: bool = False


class QcOutliers(BaseModel):
    """How a series' key QC metrics are compared with the site's own history (pipeline/outliers.py):
    a robust z beyond `z` is an outlier, once `min_history` earlier sessions are recorded."""

    model_config = _FROZEN
    min_history: int = Field(8, ge=1)  # earlier sessions needed before comparing with the site's history
    z: float = Field(3.5, gt=0, allow_inf_nan=False)  # robust z beyond which a metric is an outlier

    def overlaid(self, layer: Mapping[str, Any] | None) -> QcOutliers:
        """These settings with the keys given in `layer` replaced (a site's block over the study's)."""
        given = {key: value for key, value in (layer or {}).items() if value is not None}
        return self.model_copy(update=given) if given else self


class SiteConfig(BaseModel):
    model_config = _FROZEN
    code: str
    xnat_project: str  # the site's override, else the study's xnat.project
    tags: dict[str, TagRule]  # effective rules: study rules, replaced tag by tag by the site's
    phantom_tags: dict[str, TagRule] | None = None  # rules for phantom sessions; None: the same as tags
    header_check: HeaderCheckYaml | None = None  # the site's header_check layer
    qc_outliers: QcOutliers = QcOutliers()  # effective: defaults < study's qc_outliers < site's

    def rules_for(self, is_phantom: bool) -> dict[str, TagRule]:
        """The rules (and expected counts) for a participant or a phantom session of this site."""
        return self.phantom_tags if is_phantom and self.phantom_tags is not None else self.tags


class StudyConfig(BaseModel):
    model_config = _FROZEN
    code: str
    name: str
    xnat: XnatConfig  # url with DATMAN_XNAT_URL applied
    sites: dict[str, SiteConfig]
    source: Path  # the study's YAML file
    header_check: HeaderCheckYaml | None = None  # the study's header_check layer
    qc_outliers: QcOutliers = QcOutliers()  # the study's (defaults < study); each site has its effective one
    qc: QcSettings = DEFAULT_QC  # which MRIQC convention and anatomical engine (qc/settings.py)
    bids: BidsStudy = BidsStudy()  # how its BIDS release is made (config/bids_block.py)

    def header_settings(self, site: str, tag: str) -> HeaderCheckSettings:
        """The header check for one site and tag: the built-in defaults, then the study's,
        the site's and the tag's `header_check:` layers (drift/settings.py says how they merge)."""
        site_config = self.sites[site]
        rule = site_config.tags.get(tag) or (site_config.phantom_tags or {}).get(tag)
        return merge(self.header_check, site_config.header_check, rule.header_check if rule else None)


class LabConfig(BaseModel):
    model_config = _FROZEN
    config_dir: Path
    tags: dict[str, TagInfo]
    studies: dict[str, StudyConfig]  # by study code
    runs: RunSettings = RunSettings()  # runs.yml: run limits and priorities (config/runs_block.py)

    def study(self, code: str) -> StudyConfig | None:
        return self.studies.get(code)

    def site(self, study: str, site: str) -> SiteConfig | None:
        found = self.studies.get(study)
        return found.sites.get(site) if found else None

    def xnat_projects(self) -> list[tuple[StudyConfig, str]]:
        """Each distinct (study, XNAT project) pair to poll, sorted by study code then project."""
        pairs = []
        for code in sorted(self.studies):
            study = self.studies[code]
            for project in sorted({site.xnat_project for site in study.sites.values()}):
                pairs.append((study, project))
        return pairs
