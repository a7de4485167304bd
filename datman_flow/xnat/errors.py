"""Errors raised by the XNAT client. Every message names the URL and what went wrong."""
from __future__ import annotations


class XnatError(Exception):
    """Base class: something about talking to XNAT failed."""


class XnatAuthError(XnatError):
    """XNAT refused the credentials, or no credentials were configured."""


class XnatUnavailable(XnatError):
    """XNAT could not be reached, or kept failing, after all retries."""


class XnatBadResponse(XnatError):
    """XNAT (or a proxy in front of it) answered with something that is not the expected JSON."""


class XnatTruncated(XnatError):
    """A streamed body (a zip download) broke off before it was complete."""


class XnatNotFound(XnatError):
    """XNAT answered 404: the project, experiment, scan or resource is not (or no longer) there."""


class XnatDeadline(XnatError):
    """A request (or the work it belonged to, e.g. one scan) did not finish within its deadline."""


class XnatOversize(XnatError):
    """XNAT sent more than it listed (a zip longer than its files can make, a huge listing)."""
