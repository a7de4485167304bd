"""The review app's doors over real HTTP (uvicorn in a thread on 127.0.0.1): every page needs a
login, a wrong password says nothing of which part was wrong, `next` never leaves the app,
logging out ends the login, every POST needs the session's CSRF token and its own Origin, the
security headers, and the MRIQC Web-API routes outside all of it."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, quote, urlsplit

from datman_flow.review.accounts import Accounts
from datman_flow.review.audit import AuditLog
from datman_flow.review.logins import LoginRegistry, LoginThrottle
from datman_flow.review.server import ReviewServer
from datman_flow.store.review_rows import SignOffRow

from review_helpers import LABEL, Browser, add_reviewer, rows

# ---- login -----------------------------------------------------------------------------------

def test_every_page_needs_a_login(app):
    server, _, images, _ = app
    anonymous = Browser(server.host, server.port)
    for path in ("/", f"/session/{LABEL}", "/next?study=SPN01", f"/pictures/{LABEL}/{images['T1'].img.rsplit('/')[-1]}"):
        reply = anonymous.get(path)
        assert reply.status == 303, path
        location = urlsplit(reply.headers["location"])
        assert location.path == "/login" and parse_qs(location.query)["next"] == [path], path
    for path in (f"/session/{LABEL}/rate", f"/session/{LABEL}/signoff", "/logout"):
        reply = anonymous.post(path, {"csrf_token": "x"})
        assert reply.status == 401 and "log in first" in reply.text, path
    page = Browser(server.host, server.port).get("/login?next=/session/x")
    assert page.status == 200 and page.csrf and 'name="next" value="/session/x"' in page.text
    (cookie,) = page.cookies
    assert cookie.startswith("datman_review=") and "httponly" in cookie and "samesite=strict" in cookie


def test_a_wrong_password_or_name_gets_the_form_again_without_saying_which(app):
    server, data, _, _ = app
    for name, password in (("alice", "not her password"), ("mallory", "whatever1234")):
        browser = Browser(server.host, server.port)
        reply = browser.login(name, password)
        assert reply.status == 401 and "wrong name or password" in reply.text
        assert "csrf_token" in reply.text and browser.get("/").status == 303  # still not logged in
    failed = [e for e in AuditLog(data).entries() if e["what"] == "login_failed"]
    assert {e["who"] for e in failed} >= {"alice", "mallory"} and all(e["client"] == "127.0.0.1" for e in failed)


def test_login_goes_to_next_but_never_to_another_site(app):
    server = app[0]
    for wanted, expected in ((f"/session/{LABEL}", f"/session/{LABEL}"), ("/?state=all", "/?state=all"),
                             ("https://evil.example/", "/"), ("//evil.example/x", "/"), ("/\\evil.example", "/"),
                             ("javascript:alert(1)", "/"), ("http:/evil", "/"), ("", "/")):
        browser = Browser(server.host, server.port)
        reply = browser.login("alice", next_path=wanted)
        assert reply.status == 303 and reply.headers["location"] == expected, wanted
    browser = Browser(server.host, server.port)
    token = browser.get("/login").csrf
    reply = browser.post("/login", {"username": "alice", "password": "correct horse battery", "csrf_token": token,
                                    "next": "https://evil.example/"})
    assert reply.status == 303 and reply.headers["location"] == "/"


def test_logout_ends_the_login_even_for_a_copied_cookie(app):
    server = app[0]
    browser = Browser(server.host, server.port)
    browser.login("bob")
    copied = dict(browser.cookies)
    assert browser.get("/").status == 200
    assert browser.post("/logout", {"csrf_token": browser.token()}).status == 303
    assert browser.get("/").status == 303
    replay = Browser(server.host, server.port)
    replay.cookies = copied
    assert replay.get("/").status == 303  # the signed cookie alone is no login


# ---- CSRF and headers ------------------------------------------------------------------------

def test_a_post_without_the_session_s_token_or_from_another_origin_is_refused(app, alice):
    server, data, _, _ = app
    path = f"/session/{LABEL}/signoff"
    before = len(rows(data, SignOffRow))
    token = alice.token()
    refused = [({"comment": "x"}, {}, "CSRF token missing"),
               ({"comment": "x", "csrf_token": "wrong" * 10}, {}, "does not match"),
               ({"comment": "x"}, {"X-CSRF-Token": "wrong" * 10}, "does not match"),
               ({"comment": "x", "csrf_token": token}, {"Origin": "https://evil.example"}, "cross-origin"),
               ({"comment": "x", "csrf_token": token}, {"Origin": "null"}, "cross-origin")]
    for form, headers, reason in refused:
        reply = alice.post(path, form, headers=headers)
        assert reply.status == 403 and reason in reply.text, (form, headers)
    json_reply = alice.post(path, {"comment": "x"}, headers={"Accept": "application/json"})
    assert json_reply.status == 403 and "CSRF token missing" in json_reply.json()["error"]
    assert len(rows(data, SignOffRow)) == before
    other = Browser(server.host, server.port)  # a login without a token of the session
    assert other.post("/login", {"username": "alice", "password": "correct horse battery"}).status == 403
    same_origin = {"Origin": f"http://{server.host}:{server.port}"}
    assert alice.post(path, {"comment": "fine", "csrf_token": token}, headers=same_origin).status == 303
    assert alice.post(path, {"comment": "by header"}, headers={"X-CSRF-Token": token}).status == 303
    assert len(rows(data, SignOffRow)) == before + 2


def test_pages_carry_the_security_headers_and_a_nonce_for_their_script(app, alice):
    reply = alice.get(f"/session/{LABEL}")
    assert reply.status == 200
    headers = reply.headers
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin" and headers["cache-control"] == "no-store"
    csp = headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert f'<script nonce="{nonce}">' in reply.text and f'<style nonce="{nonce}">' in reply.text
    assert reply.text.count("<script") == 1
    assert nonce not in alice.get(f"/session/{LABEL}").headers["content-security-policy"]  # fresh per response


# ---- the MRIQC routes are outside the login and CSRF ------------------------------------------

def test_the_mriqc_routes_need_neither_cookie_nor_csrf(tmp_path, monkeypatch):
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    import datman_flow.review.app as review_app

    async def api(request):
        return PlainTextResponse("api " + request.method)

    monkeypatch.setattr(review_app, "mriqc_routes", lambda data_dir: [Route("/api/v1/rating", api, methods=["POST"])])
    with ReviewServer(tmp_path) as server:
        browser = Browser(server.host, server.port)
        reply = browser.post("/api/v1/rating", {"rating": "good"})
        assert reply.status == 200 and reply.text == "api POST" and not reply.cookies
        assert reply.headers["x-frame-options"] == "DENY"
        assert browser.get("/").status == 303  # everything else still needs the login
        assert quote("/") in browser.get("/").headers["location"]


def test_a_removed_reviewer_is_logged_out_and_the_favicon_is_nobody_s_secret(app):
    server, data, _, _ = app
    add_reviewer(data, "erin")
    browser = Browser(server.host, server.port)
    assert browser.login("erin").status == 303 and browser.get("/").status == 200
    Accounts(data).remove("erin")
    assert browser.get("/").status == 303
    assert Browser(server.host, server.port).get("/favicon.ico").status == 204


def test_failed_logins_are_throttled_per_address_and_logins_expire():
    throttle = LoginThrottle(limit=3, window=60)
    for _ in range(3):
        assert not throttle.blocked("10.0.0.1")
        throttle.failed("10.0.0.1")
    assert throttle.blocked("10.0.0.1") and not throttle.blocked("10.0.0.2")
    throttle.succeeded("10.0.0.1")
    assert not throttle.blocked("10.0.0.1")
    logins = LoginRegistry(max_age=0.2)
    login = logins.start("alice")
    assert logins.user_of(login, "alice") == "alice" and logins.user_of(login, "bob") is None
    assert logins.user_of("forged", "alice") is None and logins.user_of(None, "alice") is None
    time.sleep(0.25)
    assert logins.user_of(login, "alice") is None
