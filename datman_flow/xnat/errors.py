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
