#!/usr/bin/env python3
"""Browser tests of the web console (issue 17), run by tests/tests/console.rs against
the system `coordctl up` started with the reference scenario.

Playwright drives Debian's chromium-headless-shell; every request goes to the gateway
on 127.0.0.1. Each check is a function; the run prints one line per check and a
closing "N passed, M failed" line, and exits non-zero when any failed.

Environment: CONSOLE_URL, CONSOLE_CREDENTIALS (the tokens `coordctl up` wrote),
CONSOLE_READER_TOKEN, CONSOLE_SHORT_TOKEN (an operator token that expires in seconds),
CONSOLE_ARTIFACTS (where screenshots go), CONSOLE_AXE (axe-core's axe.min.js).
"""

import base64
import io
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import openpyxl
from openapi_spec_validator import OpenAPIV31SpecValidator
from playwright.sync_api import sync_playwright

BASE = os.environ["CONSOLE_URL"]
CREDS = os.environ["CONSOLE_CREDENTIALS"]
ARTIFACTS = os.environ["CONSOLE_ARTIFACTS"]
AXE = os.environ["CONSOLE_AXE"]
TIMEOUT_MS = 30_000


def token(name):
    with open(os.path.join(CREDS, f"{name}.token")) as f:
        return f.read().strip()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, path, headers=None, body=None):
    """(status, headers, body bytes) of one request, without following redirects."""
    request = urllib.request.Request(BASE + path, method=method, headers=headers or {}, data=body)
    try:
        with OPENER.open(request, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def api(path):
    status, _, body = http("GET", path, {"Authorization": f"Bearer {token('province')}"})
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def log_head():
    return api("/v1/projector")["head"]


def session_cookie(tok):
    """Signs in over HTTP; the session cookie's `name=value` and its attributes."""
    body = urllib.parse.urlencode({"token": tok}).encode()
    status, headers, _ = http("POST", "/sign-in", {"Content-Type": "application/x-www-form-urlencoded"}, body)
    assert status == 303, status
    cookie = headers["Set-Cookie"]
    return cookie.split(";")[0], cookie


def sign_in(page, tok):
    page.goto(BASE + "/sign-in")
    page.fill("#token", tok)
    page.click("#sign-in button[type=submit]")
    page.wait_for_url(BASE + "/")


def axe_serious(page):
    page.add_script_tag(path=AXE)
    result = page.evaluate("async () => await axe.run(document)")
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


# ---- the checks ----


def check_overview(ctx):
    page = ctx["page"]
    sign_in(page, token("province"))
    assert page.text_content("#covered") == "8" and page.text_content("#total") == "11"
    whoami = page.text_content(".whoami")
    assert "Đảng ủy Công an tỉnh" in whoami and "province" not in whoami, whoami
    outstanding = page.text_content("#outstanding")
    assert len([u for u in outstanding.split(",") if u.strip()]) == 3, outstanding
    assert page.text_content("#fig-organizations") == "10"
    assert page.text_content("#fig-members") == "46"
    assert page.text_content("#fig-member-forms") == "30/15/0/1"
    unacknowledged = page.locator('#needs-list li[data-kind="unacknowledged_exchange"]')
    assert unacknowledged.count() == 2, unacknowledged.count()
    # The unit by its name, the date as the offices write it (not `an-phu, từ 2024-01-02`).
    meta = unacknowledged.first.locator(".meta").text_content()
    unit, since = meta.strip("— ").split(", từ ")
    assert "-" not in unit and unit[0].isupper(), meta
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", since), meta
    assert page.locator("#unit-grid li").count() == 11
    assert token("province") not in page.content(), "the token is in the page"
    cookie = next(c for c in ctx["browser_ctx"].cookies() if c["name"] == "coord_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    page.screenshot(path=os.path.join(ARTIFACTS, "overview.png"), full_page=True)
    ctx["record_link"] = unacknowledged.first.locator("a").get_attribute("href")
    ctx["outstanding"] = outstanding


def check_overview_at_360px(ctx):
    page = ctx["page"]
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(BASE + "/")
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 360, f"the overview is {width}px wide at 360px"


def fill_schedule(page, decided, start, end):
    page.click("details:has(form[data-command='inspection.schedule']) summary")
    page.fill("#inspection-schedule-decision_ref", "9-QĐ/ĐUCA (kiểm thử)")
    page.fill("#inspection-schedule-decided_on", decided)
    page.fill("#inspection-schedule-planned_start", start)
    page.fill("#inspection-schedule-planned_end", end)
    page.click("form[data-command='inspection.schedule'] button[type=submit]")


def check_schedule_form(ctx):
    page = ctx["page"]
    page.goto(BASE + "/districts/an-phu")
    page.screenshot(path=os.path.join(ARTIFACTS, "district.png"), full_page=True)
    page.evaluate("window.__sameDocument = true")
    head = log_head()
    fill_schedule(page, "2024-03-01", "2024-04-01", "2024-03-15")
    error = page.locator("#inspection-schedule-planned_end-error")
    error.filter(has_text="Ngày không hợp lệ").wait_for(timeout=TIMEOUT_MS)
    assert page.text_content("#inspection-schedule-planned_start-error") == ""
    assert log_head() == head, "a refused form appended"
    page.fill("#inspection-schedule-planned_end", "2024-04-30")
    page.click("form[data-command='inspection.schedule'] button[type=submit]")
    page.locator("#result").filter(has_text="Đã ghi nhận").wait_for(timeout=TIMEOUT_MS)
    new_id = page.text_content("#result").split("mã ")[1].split(",")[0]
    page.locator(f'#timeline a[href="/records/inspection/{new_id}"]').wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert log_head() > head


def check_double_submit(ctx):
    # A double click sends one command: one key per filled form, the button off while it
    # is sent (each click was a new key: two inspections).
    page = ctx["page"]
    page.goto(BASE + "/districts/an-phu")
    head = log_head()
    page.click("details:has(form[data-command='inspection.schedule']) summary")
    page.fill("#inspection-schedule-decision_ref", "10-QĐ/ĐUCA (bấm đúp)")
    page.fill("#inspection-schedule-decided_on", "2024-05-02")
    page.fill("#inspection-schedule-planned_start", "2024-06-01")
    page.fill("#inspection-schedule-planned_end", "2024-06-30")
    page.dblclick("form[data-command='inspection.schedule'] button[type=submit]")
    page.locator("#result").filter(has_text="Đã ghi nhận").wait_for(timeout=TIMEOUT_MS)
    time.sleep(1.5)  # a second request, had one gone, is answered by now
    assert log_head() == head + 1, f"a double click appended {log_head() - head} commits"


def check_submit_after_the_session_ended(ctx):
    # The answer is the sign-in page, not JSON: the form says so in Vietnamese.
    browser_ctx = ctx["browser"].new_context(viewport={"width": 1280, "height": 900})
    page = browser_ctx.new_page()
    sign_in(page, token("province"))
    page.goto(BASE + "/districts/an-phu")
    head = log_head()
    browser_ctx.clear_cookies()
    fill_schedule(page, "2024-05-03", "2024-06-01", "2024-06-30")
    error = page.locator("form[data-command='inspection.schedule'] .form-error")
    error.filter(has_text="Phiên đăng nhập đã hết").wait_for(timeout=TIMEOUT_MS)
    assert log_head() == head, "a submission without a session appended"
    browser_ctx.close()


def forms_on(page, unit):
    page.goto(BASE + f"/districts/{unit}")
    return page.eval_on_selector_all("form[data-command]", "fs => fs.map(f => f.dataset.command)")


def check_roles(ctx):
    browser = ctx["browser"]
    for who, own, other, expected in [
        (token("long-xuyen"), "long-xuyen", "an-phu",
         ["exchange.send", "exchange.acknowledge", "discipline.appeal"]),
        (os.environ["CONSOLE_READER_TOKEN"], "long-xuyen", "an-phu", []),
    ]:
        c = browser.new_context()
        page = c.new_page()
        sign_in(page, who)
        assert forms_on(page, own) == expected, forms_on(page, own)
        assert forms_on(page, other) == [], forms_on(page, other)
        c.close()


def check_refused_sessions(ctx):
    status, _, _ = http("GET", "/", {"Cookie": "coord_session=forged-session-id"})
    assert status == 401, f"a forged cookie got {status}"
    status, headers, _ = http("GET", "/")
    assert status == 303 and headers["Location"] == "/sign-in", status
    short = os.environ["CONSOLE_SHORT_TOKEN"]
    claims = json.loads(base64.urlsafe_b64decode(short.split(".")[1] + "=="))
    cookie, attributes = session_cookie(short)
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes, attributes
    assert http("GET", "/", {"Cookie": cookie})[0] == 200
    time.sleep(max(0, claims["exp"] - time.time()) + 1.1)
    status, _, body = http("GET", "/", {"Cookie": cookie})
    assert status == 401, f"an expired session got {status}"


def check_csrf(ctx):
    cookie, _ = session_cookie(token("province"))
    form = {"kind": "inspection", "category": "compliance", "leading_body": "provincial_standing_committee",
            "decision_ref": "x", "decided_on": "2024-03-01", "planned_start": "2024-04-01", "planned_end": "2024-04-30"}
    head = log_head()
    for extra in ({}, {"csrf": "not-this-sessions"}):
        body = urllib.parse.urlencode({**form, **extra}).encode()
        status, _, answer = http("POST", "/districts/an-phu/forms/inspection.schedule",
                                 {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}, body)
        assert status == 403, (status, answer)
        assert json.loads(answer)["code"] == "csrf_token_invalid"
    assert log_head() == head


def wait_for_proof(page, url):
    deadline = time.time() + 60
    while time.time() < deadline:
        if page.evaluate("async u => (await fetch(u)).status", url) == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"no proof at {url} within 60 s")


def check_verify(ctx):
    page = ctx["page"]
    page.goto(BASE + ctx["record_link"])
    button = page.locator("button.verify").first
    wait_for_proof(page, button.get_attribute("data-proof"))
    button.click()
    page.locator('#verify-result[data-outcome="verified"]').wait_for(timeout=TIMEOUT_MS)
    assert "chữ ký Ed25519 hợp lệ" in page.text_content("#verify-result"), page.text_content("#verify-result")

    def tamper(route):
        material = route.fetch().json()
        proof = material["inclusion"]
        data = bytearray(base64.b64decode(proof["hashes"][0] if proof["hashes"] else proof["leaf_data"]))
        data[-1] ^= 1
        if proof["hashes"]:
            proof["hashes"][0] = base64.b64encode(bytes(data)).decode()
        else:
            proof["leaf_data"] = base64.b64encode(bytes(data)).decode()
        route.fulfill(json=material)

    page.route("**/proof/**", tamper)
    page.evaluate("document.getElementById('verify-result').removeAttribute('data-outcome')")
    button.click()
    page.locator('#verify-result[data-outcome="failed"]').wait_for(timeout=TIMEOUT_MS)
    page.unroute("**/proof/**")


def api_post(path, who, body):
    status, _, answer = http("POST", path, {"Authorization": f"Bearer {token(who)}",
                                            "Content-Type": "application/json"}, json.dumps(body).encode())
    assert status in (200, 201), (path, status, answer[:300])
    return json.loads(answer)


def check_record_page(ctx):
    # Fields, values and events in Vietnamese (not `unit: an-phu`, `InformationExchanged`),
    # and the page follows the record: the receipt appears without a reload.
    page = ctx["page"]
    page.goto(BASE + ctx["record_link"])
    page.locator('body[data-live="open"]').wait_for(timeout=TIMEOUT_MS)
    page.evaluate("window.__sameDocument = true")
    exchange = api("/v1/exchanges/" + ctx["record_link"].rsplit("/", 1)[1])
    unit = page.text_content('#record-fields dd[data-field="unit"]')
    assert unit and unit != exchange["fields"]["unit"] and "-" not in unit, unit
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", page.text_content('#record-fields dd[data-field="sent_on"]'))
    assert page.text_content('#record-fields dd[data-field="from"]').startswith("Ban Thường vụ")
    assert page.text_content('#record-fields dt[title="topic"]') == "Nội dung trao đổi"
    events = page.eval_on_selector_all("#history tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)")
    assert events == ["Gửi thông tin"], events
    assert "Information" not in page.text_content("#history tbody")
    to = exchange["fields"]["to"]
    who = "province" if to.startswith("provincial") else to.split(":")[1]
    import datetime
    on = datetime.date.fromisoformat(exchange["fields"]["sent_on"]) + datetime.timedelta(days=3)
    api_post(f"/v1/exchanges/{exchange['id']}/acknowledge", who, {"by": to, "acknowledged_on": on.isoformat()})
    page.locator("#record-status").filter(has_text="đã tiếp nhận").wait_for(timeout=TIMEOUT_MS)
    page.locator("#history tbody tr td:nth-child(2)").filter(has_text="Tiếp nhận thông tin").wait_for(timeout=TIMEOUT_MS)
    assert page.text_content('#record-fields dd[data-field="acknowledged_on"]') == on.strftime("%d/%m/%Y")
    assert "đã tiếp nhận" in page.text_content("h1"), page.text_content("h1")
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    ctx["exchange"] = exchange


def check_district_follows_the_log(ctx):
    # Another office's command shows on an open district page without a reload (the
    # page hears the log's events: named events were never heard).
    page = ctx["page"]
    f = ctx["exchange"]["fields"]
    page.goto(BASE + f"/districts/{f['unit']}")
    page.locator('body[data-live="open"]').wait_for(timeout=TIMEOUT_MS)
    page.evaluate("window.__sameDocument = true")
    sent = api_post("/v1/exchanges", "province", {
        "term": f["term"], "unit": f["unit"], "from": "provincial_standing_committee",
        "to": f"district_standing_committee:{f['unit']}", "topic": "other",
        "subject": "Thông tin gửi khi trang đang mở", "sent_on": f["sent_on"]})
    page.locator(f'#timeline a[href="/records/exchange/{sent["aggregate_id"]}"]').wait_for(timeout=TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def check_offices_page(ctx):
    # Said for people (no millisecond counts, no JSON), and fetched again by itself.
    page = ctx["page"]
    page.goto(BASE + "/offices")
    text = page.text_content("main")
    assert "{" not in text and "(ms)" not in text, text[:500]
    assert page.locator("#sync").count() == 1
    # A single server has no witness: said so, in Vietnamese.
    assert "không chạy bên chứng thực" in page.text_content("#witness-error")
    with page.expect_request(lambda r: r.url == BASE + "/offices" and r.method == "GET", timeout=15_000):
        pass
    # Paused, it is not fetched again (WCAG 2.2.2).
    page.click("#pause-refresh")
    assert page.get_attribute("#pause-refresh", "aria-pressed") == "true"
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if r.url == BASE + "/offices" else None)
    page.wait_for_timeout(6_000)
    assert not fetched, fetched


def check_accessibility(ctx):
    page = ctx["page"]
    found = {}
    for path in ["/", "/districts/an-phu", ctx["record_link"], "/offices"]:
        page.goto(BASE + path)
        violations = axe_serious(page)
        if violations:
            found[path] = violations
    assert not found, found


def check_downloads(ctx):
    page = ctx["page"]
    page.goto(BASE + "/")
    shown = {k: page.text_content(f"#fig-{k}") for k in ("organizations", "members", "member-forms")}
    cookie, _ = session_cookie(token("province"))
    status, _, body = http("GET", "/downloads/districts.csv", {"Cookie": cookie})
    assert status == 200, status
    import csv
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    status, _, xbody = http("GET", "/downloads/districts.xlsx", {"Cookie": cookie})
    assert status == 200, status
    sheet = openpyxl.load_workbook(io.BytesIO(xbody)).active
    xrows = [[("" if v is None else str(int(v)) if isinstance(v, float) else str(v)) for v in r]
             for r in sheet.iter_rows(values_only=True)]
    for table in (rows, xrows):
        header, total = table[0], table[-1]
        assert header[0] == "Đơn vị" and header[5] == "Đảng viên bị kỷ luật", header
        assert len(table) == 13 and total[0] == "Toàn tỉnh", total
        assert total[4] == shown["organizations"] and total[5] == shown["members"], (total, shown)
        assert "/".join(total[6:10]) == shown["member-forms"], (total, shown)


def check_openapi(ctx):
    document = api("/v1/openapi.json")
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert not errors, f"{len(errors)} errors, first: {errors[:3]}"


CHECKS = [check_refused_sessions, check_openapi, check_overview, check_overview_at_360px, check_schedule_form,
          check_double_submit, check_submit_after_the_session_ended, check_roles, check_csrf, check_verify,
          check_record_page, check_district_follows_the_log, check_offices_page, check_accessibility, check_downloads]


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    passed, failed = 0, 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium-headless-shell", args=["--no-sandbox"])
        browser_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        browser_ctx.set_default_timeout(TIMEOUT_MS)
        ctx = {"browser": browser, "browser_ctx": browser_ctx, "page": browser_ctx.new_page()}
        for check in CHECKS:
            try:
                check(ctx)
                passed += 1
                print(f"ok: {check.__name__}", flush=True)
            except Exception:
                failed += 1
                print(f"FAILED: {check.__name__}\n{traceback.format_exc()}", flush=True)
        browser.close()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
