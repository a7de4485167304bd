"""Tag-rule patterns, compiled with Google RE2: a study lead's regex runs in linear time.

Python's `re` backtracks, so a pattern such as `(a+)+$` tries about 2**50 ways to match a
50-character series description that ends in something else: months of one CPU. RE2 never
backtracks; the price is that it has no backreferences, lookaround, atomic groups or possessive
quantifiers. A pattern using them is refused when the configuration is read, with the reason in
words.

The meaning is unchanged otherwise: a case-insensitive search anywhere in the value (what
`re.search(pattern, value, re.IGNORECASE)` did).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2

# RE2's complaint (or the pattern's text) -> what a study lead reads; first hit wins
_UNSUPPORTED = (
    ("(?P=", "backreferences (?P=name) are not supported"),
    ("(?=", "lookahead (?=...) is not supported"),
    ("(?!", "negative lookahead (?!...) is not supported"),
    ("(?<=", "lookbehind (?<=...) is not supported"),
    ("(?<!", "negative lookbehind (?<!...) is not supported"),
    ("(?>", "atomic groups (?>...) are not supported"),
)
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]")
_POSSESSIVE = re.compile(r"bad repetition operator: [*+?]\+")
LINEAR = "tag rules use RE2 syntax, which runs in linear time"


@dataclass(frozen=True)
class Pattern:
    """A compiled tag-rule pattern; equal to another with the same text (as re.Pattern was), so
    configurations compare equal after a pickle or a copy."""

    text: str
    regexp: Any = field(compare=False, repr=False)  # re2._Regexp

    def search(self, value: str) -> bool:
        """True when the pattern is found anywhere in `value`."""
        try:
            return self.regexp.search(value) is not None
        except UnicodeEncodeError:  # a lone surrogate from a damaged header: match what can be read
            return self.regexp.search(value.encode("utf-8", "replace").decode("utf-8")) is not None


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in words."""


def compile_pattern(pattern: str) -> Pattern:
    """The pattern compiled case-insensitively, or PatternError."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the reason is ours to report, not RE2's to print on stderr
    try:
        return Pattern(pattern, re2.compile(pattern, options))
    except re2.error as exc:
        raise PatternError(_why(pattern, _text(exc))) from None
    except UnicodeEncodeError:
        raise PatternError("holds a character that is not valid Unicode text") from None


def _text(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else str(exc)
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _why(pattern: str, reason: str) -> str:
    if _BACKREFERENCE.search(reason):
        return rf"backreferences (\{reason[-1]}) are not supported: {LINEAR}"
    if _POSSESSIVE.search(reason):
        return f"possessive quantifiers (++, *+, ?+) are not supported: {LINEAR}"
    if reason.startswith("invalid perl operator"):
        for opener, why in _UNSUPPORTED:
            if opener in pattern:
                return f"{why}: {LINEAR}"
    what, _, where = reason.partition(": ")  # RE2 says 'missing ): Sag(T1'
    if what == "invalid repetition size":
        what += " (at most 1000)"
    return f"{what} at '{where}' ({LINEAR})" if where else f"{reason} ({LINEAR})"
