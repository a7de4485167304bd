"""From a session label to the study and site whose rules apply, or the reason it is refused."""

from __future__ import annotations

from dataclasses import dataclass

from datman_flow.config import LabConfig, SiteConfig, StudyConfig, TagRule
from datman_flow.naming import InvalidLabel, ScanId, parse_session_label


class SessionRejected(ValueError):
    """The session is not ingested; the message says why (shown to operators)."""


@dataclass(frozen=True)
class SessionTarget:
    scan_id: ScanId
    study: StudyConfig
    site: SiteConfig

    @property
    def label(self) -> str:
        return self.scan_id.label

    @property
    def rules(self) -> dict[str, TagRule]:
        """Tagging rules and expected counts for this session (phantoms may have their own)."""
        return self.site.rules_for(self.scan_id.is_phantom)


def resolve_session(config: LabConfig, label: str, xnat_project: str | None = None) -> SessionTarget:
    try:
        scan_id = parse_session_label(label)
    except InvalidLabel as exc:
        raise SessionRejected(f"invalid session label: {exc}") from None
    study = config.study(scan_id.study)
    if study is None:
        known = ", ".join(sorted(config.studies)) or "none"
        raise SessionRejected(f"study {scan_id.study!r} of {label!r} is not configured (configured: {known})")
    site = config.site(scan_id.study, scan_id.site)
    if site is None:
        known = ", ".join(sorted(study.sites))
        raise SessionRejected(f"site {scan_id.site!r} of {label!r} is not configured for study "
                              f"{study.code} (sites: {known}) in {study.source}")
    if xnat_project is not None and xnat_project != site.xnat_project:
        raise SessionRejected(f"{label!r} is in XNAT project {xnat_project!r}, but site {site.code} of "
                              f"{study.code} is configured to come from {site.xnat_project!r}")
    return SessionTarget(scan_id=scan_id, study=study, site=site)
