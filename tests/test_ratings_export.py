"""`datman-flow ratings export`: the review tables as the A2CPS derivative-QC kit's four Parquet
tables, read back with DuckDB as the kit's notebook reads them: the kit's columns in its order
and types, the values, the PNG bytes embedded, and the kit's own recipe ("exclude every failed
fieldmap coregistration") giving exactly the expected files. Hostile picture paths are never read."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from datman_flow.cli import main
from datman_flow.export.ratings import export_ratings
from datman_flow.review.scales import Display, Rating, Step
from datman_flow.store import MetricStore
from datman_flow.store.review_rows import RatingCoordinateRow, RatingImageRow, RatingRow, RatingSessionRow

A, B, OTHER = "SPN01_CMH_0001_01_01", "SPN01_CMH_0002_01_01", "OPT01_UTO_0003_01_01"
WHEN = datetime(2026, 3, 4, 5, 6, 7)  # naive UTC, as the store keeps it

KIT_COLUMNS = {
    "session": [("id", "BIGINT"), ("step", "BIGINT"), ("user", "VARCHAR"), ("created", "TIMESTAMP WITH TIME ZONE")],
    "image": [("id", "BIGINT"), ("img", "BLOB"), ("slice", "BIGINT"), ("file1", "VARCHAR"), ("file2", "VARCHAR"),
              ("display", "BIGINT"), ("step", "BIGINT"), ("created", "TIMESTAMP WITH TIME ZONE")],
    "rating": [("id", "BIGINT"), ("source_data_issue", "BOOLEAN"), ("rating", "BIGINT"), ("img_id", "BIGINT"),
               ("session", "BIGINT"), ("notes", "VARCHAR"), ("created", "TIMESTAMP WITH TIME ZONE")],
    "coordinate": [("id", "BIGINT"), ("source_data_issue", "BOOLEAN"), ("x", "DOUBLE"), ("y", "DOUBLE"),
                   ("img_id", "BIGINT"), ("session", "BIGINT"), ("notes", "VARCHAR"),
                   ("created", "TIMESTAMP WITH TIME ZONE")],
}


def png_bytes(shade: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 6), shade).save(out, format="PNG")
    return out.getvalue()


def picture(data: Path, relative: str, shade: int) -> str:
    path = data / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(shade))
    return relative


def image(session: str, img: str, file1: str, step: int, display: int = Display.Z, slice_: int | None = None,
          file2: str | None = None) -> RatingImageRow:
    return RatingImageRow(id=0, img=img, slice=slice_, file1=file1, file2=file2, display=display, step=step,
                          created=WHEN, scan_session=session)


def rate(store: MetricStore, session: str, img: RatingImageRow, rating: int, user: str = "ana",
         notes: str = "", clicks: list[tuple[float, float]] | None = None) -> RatingRow:
    sitting = store.append(RatingSessionRow, session,
                           [RatingSessionRow(id=0, step=img.step, user=user, created=WHEN, scan_session=session)])[0]
    row = store.append(RatingRow, session, [RatingRow(id=0, source_data_issue=False, rating=rating, img_id=img.id,
                                                      session=sitting.id, notes=notes, created=WHEN,
                                                      scan_session=session, user=user)])[0]
    points = clicks if clicks is not None else [(None, None)]
    store.append(RatingCoordinateRow, session, [
        RatingCoordinateRow(id=0, source_data_issue=rating == Rating.FAIL, x=x, y=y, img_id=img.id, session=sitting.id,
                            notes=notes, created=WHEN, scan_session=session, user=user) for x, y in points])
    return row


@pytest.fixture()
def reviewed(tmp_path: Path):
    """A data folder whose store holds images, rating sessions, ratings and clicks of three
    scanning sessions (two of study SPN01), with the rated pictures on disk."""
    data = tmp_path / "data"
    store = MetricStore.under(data)
    nii = "nii/SPN01_CMH_0001_01"
    fmap_ok = image(A, picture(data, f"{nii}/fmap_rest_run-01.png", 10), "sub-10001_task-rest_run-01_bold.nii.gz",
                    Step.FMAP_COREGISTRATION, file2="sub-10001_T1w.nii.gz")
    fmap_bad = image(A, picture(data, f"{nii}/fmap_cuff_run-02.png", 20), "sub-10001_task-cuff_run-02_bold.nii.gz",
                     Step.FMAP_COREGISTRATION, file2="sub-10001_T1w.nii.gz")
    t1 = image(A, picture(data, f"{nii}/t1_axial.png", 30), f"{nii}/{A}_T1_02_t1.nii.gz", Step.RAW_T1W, slice_=88)
    rst = image(A, picture(data, f"{nii}/rst.png", 40), f"{nii}/{A}_RST_03_rst.nii.gz", Step.RAW_BOLD)
    fmap_b = image(B, picture(data, "nii/SPN01_CMH_0002_01/fmap.png", 50), "sub-10002_task-rest_run-01_bold.nii.gz",
                   Step.FMAP_COREGISTRATION)
    dwi_b = image(B, "nii/SPN01_CMH_0002_01/gone.png", "nii/SPN01_CMH_0002_01/dwi.nii.gz", Step.RAW_DWI)
    other = image(OTHER, picture(data, "nii/OPT01_UTO_0003_01/t1.png", 60), "nii/OPT01_UTO_0003_01/t1.nii.gz",
                  Step.RAW_T1W)
    a_images = store.append(RatingImageRow, A, [fmap_ok, fmap_bad, t1, rst])
    b_images = store.append(RatingImageRow, B, [fmap_b, dwi_b])
    other_images = store.append(RatingImageRow, OTHER, [other])
    fmap_ok, fmap_bad, t1, rst = a_images
    fmap_b, dwi_b = b_images
    rate(store, A, fmap_ok, Rating.PASS)
    rate(store, A, fmap_bad, Rating.FAIL, notes="fieldmap off by a slab", clicks=[(3.0, 4.5), (7.25, 1.0)])
    rate(store, A, t1, Rating.PASS, user="bo")
    rate(store, A, rst, Rating.FAIL, user="bo", notes="ghosting")
    rate(store, B, fmap_b, Rating.FAIL)
    rate(store, B, dwi_b, Rating.FAIL, notes="dropout")
    rate(store, OTHER, other_images[0], Rating.FAIL)
    return data, store, {"fmap_ok": fmap_ok, "fmap_bad": fmap_bad, "t1": t1, "rst": rst, "fmap_b": fmap_b,
                         "dwi_b": dwi_b, "other": other_images[0]}


def read(out: Path, table: str, sql: str = "SELECT * FROM t ORDER BY id") -> list[dict]:
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{out / (table + '.parquet')}')")
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def describe(out: Path, table: str) -> list[tuple[str, str]]:
    with duckdb.connect() as con:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM '{out / (table + '.parquet')}'").fetchall()]


def test_the_four_tables_have_the_kit_s_columns_types_and_values(reviewed, tmp_path):
    data, _, images = reviewed
    out = tmp_path / "qc"
    done = export_ratings(data, out)
    assert sorted(p.name for p in out.iterdir()) == ["coordinate.parquet", "image.parquet", "rating.parquet",
                                                     "session.parquet"]  # the scratch database is gone
    for table, columns in KIT_COLUMNS.items():
        assert describe(out, table) == columns, table
    assert done.tables.rows == {"session": 7, "image": 7, "rating": 7, "coordinate": 8}
    assert [(p.image_id, p.kind, p.reason) for p in done.problems] == [(images["dwi_b"].id, "missing", "no such file")]

    utc = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    sessions = read(out, "session")
    assert [(s["step"], s["user"]) for s in sessions][:4] == [(3, "ana"), (3, "ana"), (100, "bo"), (101, "bo")]
    assert all(s["created"] == utc for s in sessions)  # the naive UTC time is the same instant
    pictures = {row["id"]: row for row in read(out, "image")}
    t1 = pictures[images["t1"].id]
    assert t1["img"] == (data / images["t1"].img).read_bytes() == png_bytes(30)
    assert Image.open(io.BytesIO(t1["img"])).size == (8, 6)
    assert (t1["slice"], t1["file1"], t1["file2"], t1["display"], t1["step"]) == (
        88, images["t1"].file1, None, 2, 100)
    assert pictures[images["fmap_bad"].id]["file2"] == "sub-10001_T1w.nii.gz"
    assert pictures[images["dwi_b"].id]["img"] is None  # missing on disk: NULL, and said so

    ratings = read(out, "rating")
    bad = next(r for r in ratings if r["img_id"] == images["fmap_bad"].id)
    assert (bad["rating"], bad["notes"], bad["source_data_issue"], bad["created"]) == (
        2, "fieldmap off by a slab", False, utc)
    assert {r["session"] for r in ratings} == {s["id"] for s in sessions}
    clicks = read(out, "coordinate", "SELECT img_id, x, y FROM t ORDER BY id")
    assert [(c["x"], c["y"]) for c in clicks if c["img_id"] == images["fmap_bad"].id] == [(3.0, 4.5), (7.25, 1.0)]
    # a review without clicks is one row with NULL x and y
    assert [(c["x"], c["y"]) for c in clicks if c["img_id"] == images["fmap_ok"].id] == [(None, None)]


def test_the_kit_s_recipe_finds_exactly_the_failed_files(reviewed, tmp_path):
    data, _, images = reviewed
    out = tmp_path / "qc"
    export_ratings(data, out)
    recipe = ("SELECT DISTINCT i.file1 FROM read_parquet('{o}/image.parquet') i "
              "JOIN read_parquet('{o}/rating.parquet') r ON r.img_id = i.id "
              "WHERE i.step = {step} AND r.rating = 2 ORDER BY 1")
    with duckdb.connect() as con:
        def failed(step: int) -> list[str]:
            return [r[0] for r in con.execute(recipe.format(o=out, step=step)).fetchall()]

        assert failed(Step.FMAP_COREGISTRATION) == ["sub-10001_task-cuff_run-02_bold.nii.gz",
                                                    "sub-10002_task-rest_run-01_bold.nii.gz"]
        assert failed(Step.RAW_T1W) == [images["other"].file1]
        assert failed(Step.RAW_BOLD) == [images["rst"].file1]
        assert failed(Step.RAW_DWI) == [images["dwi_b"].file1]


def test_one_study_only_and_rows_without_their_image_left_out(reviewed, tmp_path):
    data, store, images = reviewed
    # a rating of an image that is not in the store (a hand edit): left out, and counted
    store.append(RatingRow, B, [RatingRow(id=0, source_data_issue=False, rating=0, img_id=9999, session=1, notes="",
                                          created=WHEN, scan_session=B)])
    out = tmp_path / "spn"
    done = export_ratings(data, out, study="SPN01")
    assert done.tables.rows == {"session": 6, "image": 6, "rating": 6, "coordinate": 7}
    assert done.tables.left_out == {"session": 0, "image": 0, "rating": 1, "coordinate": 0}
    files = [r["file1"] for r in read(out, "image")]
    assert images["other"].file1 not in files and images["t1"].file1 in files
    assert read(out, "rating", "SELECT count(*) AS n FROM t WHERE img_id = 9999") == [{"n": 0}]


def test_hostile_picture_paths_are_never_read(reviewed, tmp_path):
    data, store, _ = reviewed
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png_bytes(99))  # a PNG, so only the path check can keep it out
    folder = data / "nii" / "SPN01_CMH_0001_01"
    (folder / "link_out.png").symlink_to(secret)
    (folder / "passwd_link.png").symlink_to("/etc/passwd")
    (folder / "not_png.png").write_bytes(b"GIF89a not a png")
    os.mkfifo(folder / "fifo.png")  # reading it would block forever
    hostile = {"../../etc/passwd": "'..' in the path", str(secret): "an absolute path",
               "/etc/passwd": "an absolute path", "nii/SPN01_CMH_0001_01/link_out.png": "outside the data folder",
               "nii/SPN01_CMH_0001_01/passwd_link.png": "outside the data folder",
               "nii/SPN01_CMH_0001_01/../../../outside/secret.png": "'..' in the path",
               "nii/SPN01_CMH_0001_01/not_png.png": "not a PNG", "nii/SPN01_CMH_0001_01/fifo.png": "not a regular file",
               "nii/SPN01_CMH_0001_01": "not a regular file", ".": "outside the data folder"}
    added = store.append(RatingImageRow, A, [image(A, img, f"x{n}.nii.gz", Step.RAW_T1W, slice_=n)
                                             for n, img in enumerate(hostile)])
    out = tmp_path / "qc"
    done = export_ratings(data, out)
    refused = {p.img: p.reason for p in done.problems if p.kind == "refused"}
    assert set(refused) == set(hostile)
    for img, reason in hostile.items():
        assert reason in refused[img], (img, refused[img])
    blobs = read(out, "image", "SELECT id, img FROM t")
    assert all(r["img"] is None for r in blobs if r["id"] in {a.id for a in added})
    assert not any(r["img"] == png_bytes(99) for r in blobs)


def test_the_command_prints_what_it_wrote_and_left_out(reviewed, tmp_path, capsys, monkeypatch):
    data, _, images = reviewed
    monkeypatch.setenv("DATMAN_CONFIG_DIR", str(Path(__file__).resolve().parents[1] / "configs"))
    out = tmp_path / "kit"
    assert main(["ratings", "export", str(out), "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'image.parquet'}: 7 row(s)" in printed and "coordinate.parquet: 8 row(s)" in printed
    assert f"image {images['dwi_b'].id} exported without its picture (missing: no such file)" in printed
    assert main(["ratings", "export", str(out), "--data-dir", str(data), "--study", "SPN02"]) == 2
    assert "unknown study 'SPN02'" in capsys.readouterr().err
    assert main(["ratings", "export", str(out), "--data-dir", str(tmp_path / "nowhere")]) == 2
