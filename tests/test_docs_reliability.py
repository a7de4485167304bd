"""docs/reliability.md names, for each fault, the test that proves it: every named test exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cited_tests() -> list[tuple[str, str | None]]:
    """(test file, test function or None for a whole file) for every `file.py[::name]` cited,
    a bare `::name` belonging to the file cited before it in the same cell."""
    cited = []
    for line in (REPO / "docs" / "reliability.md").read_text().splitlines():
        if not line.startswith("|"):
            continue
        cell = line.rstrip("|").rsplit("|", 1)[-1]
        current = None
        for file, name in re.findall(r"`(?:tests/)?(test_\w+\.py)?(?:::(\w+))?`", cell):
            current = file or current
            if current:
                cited.append((current, name or None))
    return cited


def test_every_test_cited_in_the_reliability_table_exists():
    cited = cited_tests()
    assert len(cited) > 40
    missing = []
    for file, name in cited:
        path = REPO / "tests" / file
        if not path.exists() or (name and not re.search(rf"^def {name}\(", path.read_text(), re.M)):
            missing.append(f"{file}::{name}" if name else file)
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"
