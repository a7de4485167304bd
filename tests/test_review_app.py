"""The reviewers' app over real HTTP (uvicorn in a thread on 127.0.0.1): the queue and `next`,
the session page, ratings with clicks, sign-offs, decisions, refusals with their reasons,
concurrent saves and the audit trail (the doors, login and CSRF: test_review_auth.py)."""

from __future__ import annotations

import re
import threading

from datman_flow.review.audit import AuditLog
from datman_flow.store.review_rows import (
    RatingCoordinateRow,
    RatingRow,
    RatingSessionRow,
    SeriesDecisionRow,
    SignOffRow,
)

from review_helpers import (
    LABEL,
    OLDER,
    OTHER_SITE,
    OTHER_STUDY,
    PICTURE_SIZE,
    RATED,
    REJECTED,
    Browser,
    rows,
)

# ---- queue -----------------------------------------------------------------------------------

def queue_labels(reply) -> list[str]:
    return re.findall(r'<a href="/session/([^"]+)">', reply.text)


def test_the_queue_lists_sessions_awaiting_review_newest_first_with_filters(app, alice):
    reply = alice.get("/?state=all")  # another test may have signed LABEL off
    assert reply.status == 200
    labels = queue_labels(reply)
    assert REJECTED not in labels and labels.index(LABEL) < labels.index(RATED) < labels.index(OTHER_SITE) \
        < labels.index(OLDER) < labels.index(OTHER_STUDY)
    assert "QC outlier in series 2 (T1)" in reply.text
    assert queue_labels(alice.get("/?study=SPN01&site=ZHH")) == [OTHER_SITE]
    assert OTHER_STUDY not in queue_labels(alice.get("/?study=SPN01"))
    assert RATED in queue_labels(alice.get("/")) and RATED not in queue_labels(alice.get("/?state=passed"))
    assert set(queue_labels(alice.get("/?tag=DTI60&state=all"))) >= {LABEL, OLDER, RATED}
    assert queue_labels(alice.get("/?tag=FLAIR")) == []
    for bad, reason in (("/?state=maybe", "state"), ("/?study=../x", "letters and digits"), ("/?page=0", "page"),
                        ("/?sort=x", "unknown parameter")):
        reply = alice.get(bad)
        assert reply.status == 400 and reason in reply.text, bad


def test_next_goes_to_the_pending_session_with_fewest_ratings_newest_first(app, alice):
    reply = alice.get("/next")
    assert reply.status == 303 and reply.headers["location"] in (f"/session/{LABEL}", f"/session/{OTHER_SITE}")
    # LABEL may have been rated by another test; RATED (one rating) is never first while unrated ones wait
    assert reply.headers["location"] != f"/session/{RATED}"
    assert alice.get("/next?site=ZHH").headers["location"] == f"/session/{OTHER_SITE}"
    done = alice.get("/next?study=NONE1")
    assert done.status == 303 and done.headers["location"] == "/?study=NONE1&done=1"
    assert "No session is pending review" in alice.get(done.headers["location"]).text


# ---- session page ----------------------------------------------------------------------------

def test_the_session_page_shows_facts_checks_metrics_and_pictures(app, alice):
    server, data, images, _ = app
    page = alice.get(f"/session/{LABEL}")
    assert page.status == 200
    text = page.text
    for fact in ("SPN01 / CMH", "2024-05-03", "XNAT_E", "attention", "QC outlier in series 2 (T1)", "RepetitionTime",
                 "snr_total", "site history", "v1.0.20240202", "md5", "Series 3: rest bold (RST)", "1</kbd>/<kbd>p"):
        assert fact in text, fact
    # the site's median of snr_total (T1) over the other SPN01 CMH sessions: 10*1.2 and 12*1.2
    assert "13.2" in text
    png = images["T1"].img.rsplit("/", 1)[-1]
    assert f'src="/pictures/{LABEL}/{png}"' in text and f'data-width="{PICTURE_SIZE[0]}"' in text
    picture = alice.get(f"/pictures/{LABEL}/{png}")
    assert picture.status == 200 and picture.body == (data / images["T1"].img).read_bytes()
    qc_png = next((data / "nii").rglob(f"{LABEL}_T1_02_*_qc.png")).name
    assert f"/pictures/{LABEL}/{qc_png}" in text
    for path in ("/session/not-a-label", "/session/SPN01_CMH_9999_01_01", f"/session/{LABEL}%2F..",
                 f"/session/{LABEL}_01"):
        reply = alice.get(path)
        assert reply.status == 404, path
    assert server.app.state.review.medians.queries == 1  # the medians were not asked again per page
    alice.get(f"/session/{LABEL}")
    assert server.app.state.review.medians.queries == 1


# ---- ratings ---------------------------------------------------------------------------------

def rate(browser: Browser, img_id: int, rating: int, points: str = "[]", json_reply: bool = False, label=LABEL,
         **extra):
    form = {"img_id": str(img_id), "rating": str(rating), "notes": extra.pop("notes", ""), "points": points,
            "csrf_token": extra.pop("token", None) or browser.token(f"/session/{label}"), **extra}
    headers = {"Accept": "application/json"} if json_reply else {}
    return browser.post(f"/session/{label}/rate", form, headers=headers)


def test_ratings_are_appended_with_their_clicks_in_pixel_space_and_the_latest_shown(app, alice):
    _, data, images, _ = app
    image = images["RST"]
    before = len([r for r in rows(data, RatingRow) if r.img_id == image.id])
    first = rate(alice, image.id, 2, '[{"x": 12.5, "y": 30}, {"x": 239.9, "y": 0}]', notes="ghosting",
                 source_data_issue="1")
    assert first.status == 303 and first.headers["location"] == f"/session/{LABEL}#img-{image.id}"
    second = rate(alice, image.id, 0, json_reply=True)
    assert second.status == 200 and second.json()["ok"] and second.json()["rating_name"] == "PASS"
    mine = sorted((r for r in rows(data, RatingRow) if r.img_id == image.id), key=lambda r: r.id)
    assert len(mine) == before + 2 and [r.rating for r in mine[-2:]] == [2, 0]
    assert mine[-2].notes == "ghosting" and mine[-2].source_data_issue and mine[-2].user == "alice"
    clicks = [c for c in rows(data, RatingCoordinateRow) if c.img_id == image.id]
    assert sorted((c.x, c.y) for c in clicks if c.created == mine[-2].created) == [(12.5, 30.0), (239.9, 0.0)]
    assert [(c.x, c.y) for c in clicks if c.created == mine[-1].created] == [(None, None)]
    sittings = [s for s in rows(data, RatingSessionRow) if s.user == "alice" and s.step == image.step]
    assert {r.session for r in mine[-2:]} == {sittings[-1].id}  # one sitting for both ratings
    page = alice.get(f"/session/{LABEL}").text
    section = page[page.index(f'id="img-{image.id}"'):]
    section = section[:section.index("</section>")]
    assert "latest: <b>PASS</b> by alice" in section and f"{len(mine)} rating(s)" in section and "FAIL" in section
    entry = [e for e in AuditLog(data).entries() if e["what"] == "rating" and e["rating_id"] == mine[-2].id]
    assert entry and entry[0]["clicks"] == [[12.5, 30.0], [239.9, 0.0]] and entry[0]["session"] == LABEL
    assert entry[0]["series"] == "3" and entry[0]["image"] == image.id and entry[0]["who"] == "alice"


def test_bad_ratings_are_refused_with_the_reason(app, alice):
    _, data, images, rated = app
    image = images["T1"]
    before = len(rows(data, RatingRow))
    token = alice.token(f"/session/{LABEL}")
    width, height = PICTURE_SIZE
    too_many = "[" + ", ".join('{"x": 1, "y": 1}' for _ in range(51)) + "]"
    refused = [({"img_id": rated[0].id}, "not one of this session's pictures"),
               ({"img_id": "abc"}, "img_id: a whole number"),
               ({"rating": 7}, "rating: 7 is not one of"),
               ({"rating": -1}, "rating: a whole number"),
               ({"points": f'[{{"x": {width + 1}, "y": 5}}]'}, "outside the 240x180 picture"),
               ({"points": f'[{{"x": 5, "y": {height + 0.5}}}]'}, "outside"),
               ({"points": '[{"x": -1, "y": 5}]'}, "outside"),
               ({"points": too_many}, "at most 50 clicks"),
               ({"points": '[{"x": NaN, "y": 5}]'}, "NaN is not a number"),
               ({"points": '[{"x": true, "y": 5}]'}, "finite number"),
               ({"points": '{"x": 1}'}, "JSON list"),
               ({"points": "[1, 2"}, "not JSON"),
               ({"notes": "n" * 2001}, "at most 2000 characters")]
    for change, reason in refused:
        form = {"img_id": image.id, "rating": 1, "token": token, **change}
        reply = rate(alice, form.pop("img_id"), form.pop("rating"), form.pop("points", "[]"), json_reply=True, **form)
        assert reply.status == 400 and reason in reply.json()["error"], (change, reply.text)
    assert rate(alice, image.id, 1, token=token).status == 303  # the same form, right, is taken
    assert rate(alice, image.id, 1, token=token, label="SPN01_CMH_9999_01_01").status == 404
    assert len(rows(data, RatingRow)) == before + 1


def test_concurrent_saves_all_land_with_unique_ids(app):
    server, data, images, _ = app
    image = images["DTI60"]
    before = len(rows(data, RatingRow))
    browsers = [Browser(server.host, server.port) for _ in range(2)]
    for b, name in zip(browsers, ("alice", "bob")):
        b.login(name)
    tokens = [b.token() for b in browsers]
    failures: list[str] = []

    def save(b: Browser, token: str) -> None:
        for i in range(20):
            reply = rate(b, image.id, i % 3, f'[{{"x": {i}, "y": {i}}}]', json_reply=True, token=token)
            if reply.status != 200:
                failures.append(reply.text)

    threads = [threading.Thread(target=save, args=(b, t)) for b, t in zip(browsers, tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures and not any(t.is_alive() for t in threads)
    ratings = rows(data, RatingRow)
    assert len(ratings) == before + 40 and len({r.id for r in ratings}) == len(ratings)
    assert len({c.id for c in rows(data, RatingCoordinateRow)}) == len(rows(data, RatingCoordinateRow))


# ---- sign-off and decisions ------------------------------------------------------------------

def test_sign_off_and_series_decisions_are_new_rows_and_change_the_review_state(app, alice):
    server, data, _, _ = app
    token = alice.token(f"/session/{OLDER}")
    path = f"/session/{OLDER}"
    reply = alice.post(f"{path}/series/4/decision", {"decision": "blacklisted", "reason": "severe motion",
                                                      "csrf_token": token})
    assert reply.status == 303 and reply.headers["location"] == f"{path}#series-4"
    (decision,) = rows(data, SeriesDecisionRow, OLDER)
    assert (decision.series_number, decision.tag, decision.decision, decision.user) == ("4", "DTI60", "blacklisted",
                                                                                        "alice")
    assert OLDER in queue_labels(alice.get("/?state=failed"))
    for form, status, reason in (({"decision": "flagged", "reason": ""}, 400, "a comment is needed"),
                                 ({"decision": "blacklisted"}, 400, "say why"),
                                 ({"decision": "deleted", "reason": "x"}, 400, "decision: one of"),
                                 ({"decision": "flagged", "reason": "x"}, 404, "no series")):
        target = f"{path}/series/{'99' if status == 404 else '3'}/decision"
        reply = alice.post(target, {**form, "csrf_token": token}, headers={"Accept": "application/json"})
        assert reply.status == status and reason in reply.json()["error"], form
    cleared = alice.post(f"{path}/series/4/decision", {"decision": "cleared", "csrf_token": token},
                         headers={"Accept": "application/json"})
    assert cleared.status == 200 and cleared.json()["decision"] == "cleared"
    assert len(rows(data, SeriesDecisionRow, OLDER)) == 2
    signed = alice.post(f"{path}/signoff", {"comment": "all looked at", "csrf_token": token})
    assert signed.status == 303 and signed.headers["location"] == f"{path}#review"
    (signoff,) = rows(data, SignOffRow, OLDER)
    assert signoff.user == "alice" and signoff.comment == "all looked at"
    assert OLDER in queue_labels(alice.get("/?state=passed")) and OLDER not in queue_labels(alice.get("/"))
    assert "signed off by alice" in alice.get(path).text
    done = {e["what"] for e in AuditLog(data).entries() if e["session"] == OLDER}
    assert done >= {"decision", "signoff"}
    assert alice.post(f"/session/{OLDER}_9/signoff", {"csrf_token": token}).status == 404


def test_the_audit_log_is_appended_lines_with_who_what_where_and_when(app, alice):
    _, data, _, _ = app
    entries = AuditLog(data).entries()
    logins = [e for e in entries if e["what"] == "login" and e["who"] == "alice"]
    assert logins and all(e["client"] == "127.0.0.1" and e["when"].endswith("+00:00") for e in logins)
    path = AuditLog(data).path
    assert path.stat().st_mode & 0o007 == 0
    size = path.stat().st_size
    rate(alice, app[2]["T1"].id, 0)
    text = path.read_text()
    assert len(text) > size and text.endswith("\n") and text.count("\n") == len(AuditLog(data).entries())


