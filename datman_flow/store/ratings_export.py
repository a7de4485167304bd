"""The A2CPS derivative-QC kit's four Parquet tables (`session`, `image`, `rating`,
`coordinate`) written from the review tables, with the kit's columns only, in its order and of
its types: what polars writes from django-qcapp-ratings' Postgres dump (ids BIGINT, `created`
TIMESTAMP WITH TIME ZONE, the picture's bytes in `img` as a BLOB). datman-flow's own columns
(scan_session, series_number, tag, user of a rating, origin...) stay in the store.

The rows are read once into a scratch DuckDB database (in memory, spilling to a hidden folder
of the output folder when thousands of pictures do not fit), the pictures' bytes are added by
the caller's `read_picture` (the export core checks each path: SQL only here, file handling
there), and each table is written with COPY to a temporary name; the four
are renamed into place together at the end, so a failed export leaves the previous four.

`created` is naive UTC in the store; with the session's TimeZone set to UTC the cast to
TIMESTAMPTZ keeps the instant. A rating or click whose picture or rating session is not among
the exported rows (a filtered study, a hand-edited store) is left out and counted: the kit's
tables come from a database with foreign keys, and a reader joins them without checking.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from datman_flow.atomic import atomic_path
from datman_flow.store.files import ensure_schema_files
from datman_flow.store.read_again import ReadAgain
from datman_flow.store.review_rows import RatingCoordinateRow, RatingImageRow, RatingRow, RatingSessionRow
from datman_flow.store.schema import table_of

TSTZ = "TIMESTAMP WITH TIME ZONE"
# the kit's tables: name -> (the review table they come from, their columns and types in order)
KIT_TABLES: dict[str, tuple[type, tuple[tuple[str, str], ...]]] = {
    "session": (RatingSessionRow, (("id", "BIGINT"), ("step", "BIGINT"), ("user", "VARCHAR"), ("created", TSTZ))),
    "image": (RatingImageRow, (("id", "BIGINT"), ("img", "BLOB"), ("slice", "BIGINT"), ("file1", "VARCHAR"),
                               ("file2", "VARCHAR"), ("display", "BIGINT"), ("step", "BIGINT"), ("created", TSTZ))),
    "rating": (RatingRow, (("id", "BIGINT"), ("source_data_issue", "BOOLEAN"), ("rating", "BIGINT"),
                           ("img_id", "BIGINT"), ("session", "BIGINT"), ("notes", "VARCHAR"), ("created", TSTZ))),
    "coordinate": (RatingCoordinateRow, (("id", "BIGINT"), ("source_data_issue", "BOOLEAN"), ("x", "DOUBLE"),
                                         ("y", "DOUBLE"), ("img_id", "BIGINT"), ("session", "BIGINT"),
                                         ("notes", "VARCHAR"), ("created", TSTZ))),
}
PICTURE_BATCH = 16  # pictures inserted per statement (a few MB)

ReadPicture = Callable[[int, str], "bytes | None"]
"""(image id, img as stored) -> the PNG's bytes, or None (missing or refused: NULL in `img`)."""


@dataclass(frozen=True)
class KitTables:
    """What one export wrote: rows per kit table, and what was left out."""

    out_dir: Path
    rows: dict[str, int] = field(default_factory=dict)  # kit table -> rows written
    left_out: dict[str, int] = field(default_factory=dict)  # kit table -> rows without their image or session

    def path(self, table: str) -> Path:
        return self.out_dir / f"{table}.parquet"


def select_sql(table: str, alias: str) -> str:
    """The kit's columns of `table`, cast to its types, from the snapshot `alias` (the image's
    `img` from the pictures read, joined as `p`)."""
    parts = []
    for name, kind in KIT_TABLES[table][1]:
        source = "p.img" if (table, name) == ("image", "img") else f'{alias}."{name}"'
        parts.append(f'CAST({source} AS {kind}) AS "{name}"')
    return ", ".join(parts)


def snapshot(con: duckdb.DuckDBPyConnection, store_dir: Path, study: str | None) -> None:
    """Tables src_<kit table> holding the review tables' rows (of one study's sessions)."""
    where, params = ("WHERE starts_with(scan_session, ?)", [f"{study}_"]) if study else ("", [])
    for table, (row_type, _) in KIT_TABLES.items():
        pattern = str(store_dir / table_of(row_type) / "*.parquet")
        con.execute(f'CREATE OR REPLACE TABLE "src_{table}" AS SELECT * FROM read_parquet(?, union_by_name = true) '
                    f"{where}", [pattern, *params])


def snapshot_retrying(con: duckdb.DuckDBPyConnection, store_dir: Path, study: str | None) -> None:
    """`snapshot`, trying again after moving an unreadable session file to the quarantine or
    meeting one that another process removed meanwhile."""
    again = ReadAgain(store_dir)
    while True:
        try:
            return snapshot(con, store_dir, study)
        except duckdb.Error as exc:
            if not again(exc):
                raise


def load_pictures(con: duckdb.DuckDBPyConnection, read_picture: ReadPicture) -> None:
    """Table `pictures` (id, img): each image's bytes as `read_picture` gives them."""
    con.execute("CREATE TABLE pictures (id BIGINT, img BLOB)")
    images = con.execute('SELECT id, img FROM "src_image" ORDER BY id').fetchall()
    for start in range(0, len(images), PICTURE_BATCH):
        batch = images[start:start + PICTURE_BATCH]
        values: list[object] = []
        for image_id, img in batch:
            values += [int(image_id), read_picture(int(image_id), "" if img is None else str(img))]
        # one statement per batch: several times faster than executemany's statement per row
        con.execute("INSERT INTO pictures VALUES " + ", ".join(["(?, ?)"] * len(batch)), values)


def kit_queries() -> dict[str, tuple[str, str]]:
    """Kit table -> (the SELECT written to its file, the count of rows it leaves out)."""
    images = 'SELECT id FROM "src_image"'
    sessions = 'SELECT id FROM "src_session"'
    linked = f'img_id IN ({images}) AND "session" IN ({sessions})'
    out = {
        "session": (f'SELECT {select_sql("session", "s")} FROM "src_session" s ORDER BY s.id', "SELECT 0"),
        "image": (f'SELECT {select_sql("image", "i")} FROM "src_image" i LEFT JOIN pictures p ON p.id = i.id '
                  f"ORDER BY i.id", "SELECT 0"),
    }
    for table in ("rating", "coordinate"):
        out[table] = (f'SELECT {select_sql(table, "r")} FROM "src_{table}" r WHERE {linked} ORDER BY r.id',
                      f'SELECT count(*) FROM "src_{table}" WHERE NOT ({linked})')
    return out


def write_kit_tables(store_dir: Path, out_dir: Path, read_picture: ReadPicture,
                     study: str | None = None) -> KitTables:
    """Write session/image/rating/coordinate.parquet into `out_dir` (made if missing) from the
    store's review tables, or from those of `study`'s scanning sessions (labels `STUDY_...`)."""
    ensure_schema_files(store_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    left_out: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=".ratings-export-", dir=out_dir) as scratch, duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = ?", [scratch])  # what does not fit in memory spills there
        snapshot_retrying(con, store_dir, study)
        load_pictures(con, read_picture)
        with ExitStack() as renames:
            for table, (select, leaves) in kit_queries().items():
                tmp = renames.enter_context(atomic_path(out_dir / f"{table}.parquet", suffix=".parquet"))
                quoted = str(tmp).replace("'", "''")
                con.execute(f"COPY ({select}) TO '{quoted}' (FORMAT parquet)")
                rows[table] = int(con.execute(f"SELECT count(*) FROM ({select})").fetchone()[0])  # type: ignore[index]
                left_out[table] = int(con.execute(leaves).fetchone()[0])  # type: ignore[index]
    return KitTables(out_dir, rows, left_out)
