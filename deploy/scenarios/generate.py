#!/usr/bin/env python3
"""Writes an-giang-2020-2025.jsonl: the reference scenario that models the article.

Since 2022-06 the Standing Committee of the An Giang Provincial Police Party Committee
coordinated with 8 of the 11 district-level standing committees on 9 inspections or
supervisions of district police Party committees, exchanged information around them, and
disciplined 10 Party organizations (all reprimand) and 46 Party members (30 reprimand,
15 warning, 1 expulsion) on conclusions of the Central Inspection Commission and of the
Central Public Security Party Standing Committee. Three districts remain to be covered
before the end of the 2020-2025 term.

Dates are plausible; every reference number is made up and says so. Ids are UUIDv5 of
readable names, so the file is deterministic and loading it twice appends nothing.
Run: python3 deploy/scenarios/generate.py > deploy/scenarios/an-giang-2020-2025.jsonl
"""
import datetime as dt
import json
import sys
import uuid

NS = uuid.UUID("6f1c2a9e-3b8d-5c4e-9a10-2b7e8d4c0a11")
TERM = "2020-2025"
FAKE = " (số hiệu giả định)"
PROVINCE = "provincial_standing_committee"
COMMISSION = "provincial_inspection_commission"
lines = []


def uid(name):
    return str(uuid.uuid5(NS, name))


def d(s, plus=0):
    return (dt.date.fromisoformat(s) + dt.timedelta(days=plus)).isoformat()


def emit(command, key, payload, office="province", actor="văn phòng Đảng ủy Công an tỉnh"):
    lines.append({"command": command, "command_id": uid("cmd:" + key), "office": office,
                  "actor": actor, "payload": payload})


def district(unit):
    return f"district_standing_committee:{unit}"


def exchange(key, unit, frm, to, topic, subject, sent_on, link=None, ack_on=None):
    xid = uid("exchange:" + key)
    payload = {"exchange_id": xid, "term": TERM, "unit": unit, "from": frm, "to": to,
               "topic": topic, "subject": subject, "sent_on": sent_on}
    if link:
        payload["link"] = link
    office = "province" if frm in (PROVINCE, COMMISSION) else f"district:{unit}"
    emit("exchange.send", "send:" + key, payload, office=office)
    if ack_on:
        ack_office = "province" if to in (PROVINCE, COMMISSION) else f"district:{unit}"
        emit("exchange.acknowledge", "ack:" + key,
             {"exchange_id": xid, "by": to, "acknowledged_on": ack_on}, office=ack_office,
             actor="văn thư tiếp nhận")


# --- 9 inspections or supervisions across 8 districts (Long Xuyên twice) ---
INSPECTIONS = [
    # unit, kind, category, decided_on, outcome
    ("long-xuyen", "inspection", "compliance", "2022-06-20", "shortcomings"),
    ("chau-doc", "supervision", "thematic", "2022-08-15", "no_violation"),
    ("tan-chau", "inspection", "inspection_work", "2022-10-10", "shortcomings"),
    ("cho-moi", "supervision", "thematic", "2023-02-13", "no_violation"),
    ("tinh-bien", "inspection", "discipline_enforcement", "2023-05-08", "shortcomings"),
    ("chau-phu", "supervision", "thematic", "2023-07-17", "no_violation"),
    ("chau-thanh", "inspection", "compliance", "2023-09-11", "violations"),
    ("phu-tan", "inspection", "finances", "2023-11-06", "shortcomings"),
    ("long-xuyen", "supervision", "thematic", "2024-03-04", "no_violation"),
]

for n, (unit, kind, category, decided, outcome) in enumerate(INSPECTIONS, 1):
    iid = uid(f"inspection:{n}")
    start, end = d(decided, 14), d(decided, 44)
    leading = PROVINCE if kind == "inspection" else COMMISSION
    emit("inspection.schedule", f"schedule:{n}", {
        "inspection_id": iid, "term": TERM, "unit": unit, "kind": kind, "category": category,
        "leading_body": leading, "coordinating_body": district(unit),
        "target": f"district_police:{unit}",
        "decision_ref": f"{100 + n}-QĐ/ĐUCA{FAKE}", "decided_on": decided,
        "planned_start": start, "planned_end": end})
    exchange(f"notice:{n}", unit, PROVINCE, district(unit), "notice_before_inspection",
             "Thông báo kế hoạch kiểm tra, giám sát Đảng bộ Công an cấp huyện", d(decided, 3),
             {"kind": "inspection", "id": iid}, ack_on=d(decided, 5))
    emit("inspection.start", f"start:{n}", {"inspection_id": iid, "started_on": start})
    concluded = d(decided, 60)
    emit("inspection.conclude", f"conclude:{n}", {
        "inspection_id": iid, "concluded_on": concluded, "outcome": outcome,
        "summary": "Đánh giá ưu điểm, hạn chế; yêu cầu khắc phục theo thông báo kết luận",
        "conclusion_ref": f"{200 + n}-TB/ĐUCA{FAKE}"})
    exchange(f"conclusion:{n}", unit, PROVINCE, district(unit), "conclusion",
             "Gửi thông báo kết luận kiểm tra, giám sát", d(concluded, 2),
             {"kind": "inspection", "id": iid}, ack_on=d(concluded, 6))

# --- annual plans sent up by every district (to avoid overlap); 2024's last two unacknowledged ---
UNITS = ["long-xuyen", "chau-doc", "tan-chau", "tinh-bien", "an-phu", "chau-phu", "chau-thanh",
         "cho-moi", "phu-tan", "thoai-son", "tri-ton"]
for i, unit in enumerate(UNITS):
    exchange(f"plan:2023:{unit}", unit, district(unit), PROVINCE, "plan",
             "Kế hoạch kiểm tra, giám sát năm 2023", d("2023-01-09", i), ack_on=d("2023-01-16", i))
for i, unit in enumerate(UNITS[:4]):
    exchange(f"plan:2024:{unit}", unit, district(unit), PROVINCE, "plan",
             "Kế hoạch kiểm tra, giám sát năm 2024", d("2024-01-08", i),
             ack_on=d("2024-01-15", i) if i < 2 else None)

# --- discipline on central conclusions: 10 organizations, 46 members ---
CENTRAL = [
    ("central_inspection_commission", f"45-TB/UBKTTW{FAKE}", "2022-09-05"),
    ("central_public_security_standing_committee", f"12-KL/ĐUCATW{FAKE}", "2023-03-20"),
]
case_no = 0


def case(unit, subject, form, basis_idx, opened, body=PROVINCE, consult=False, appeal=False):
    global case_no
    case_no += 1
    cid = uid(f"case:{case_no}")
    central_body, ref, _ = CENTRAL[basis_idx]
    emit("discipline.open", f"open:{case_no}", {
        "case_id": cid, "term": TERM, "unit": unit, "subject": subject,
        "basis": {"kind": "central_conclusion", "body": central_body, "reference": ref},
        # The violation the central conclusion found, about a year before the case: well
        # within every time limit (Quy định 69-QĐ/TW), while the district police existed.
        "violation": {"committed_on": d(opened, -400 - case_no % 90)},
        "opened_on": opened})
    if consult:
        exchange(f"consult:{case_no}", unit, PROVINCE, district(unit), "consultation",
                 "Trao đổi ý kiến trước khi xem xét kỷ luật đảng viên", d(opened, 2),
                 {"kind": "discipline_case", "id": cid}, ack_on=d(opened, 5))
    decided = d(opened, 21)
    if form is None:
        emit("discipline.close", f"close:{case_no}", {
            "case_id": cid, "closed_on": decided,
            "reason": "Đã kiểm điểm nghiêm túc, khắc phục; không đến mức phải xử lý kỷ luật"})
        return
    emit("discipline.decide", f"decide:{case_no}", {
        "case_id": cid, "form": form, "deciding_body": body, "decided_on": decided,
        "decision_ref": f"{300 + case_no}-QĐ/ĐUCA{FAKE}"})
    exchange(f"decision:{case_no}", unit, PROVINCE, district(unit), "discipline_decision",
             "Gửi quyết định thi hành kỷ luật", d(decided, 1),
             {"kind": "discipline_case", "id": cid}, ack_on=d(decided, 4))
    if appeal:
        emit("discipline.appeal", f"appeal:{case_no}", {
            "case_id": cid, "appealed_on": d(decided, 20),
            "grounds": "Đề nghị xem xét lại hình thức kỷ luật"}, office=f"district:{unit}",
            actor="đảng viên khiếu nại")
        emit("discipline.resolve_appeal", f"resolve:{case_no}", {
            "case_id": cid, "resolution": {"outcome": "upheld"},
            "resolving_body": "central_public_security_standing_committee",
            "resolved_on": d(decided, 50), "reference": f"{400 + case_no}-QĐ/ĐUCATW{FAKE}"})


ORG_UNITS = ["long-xuyen", "chau-doc", "tan-chau", "tinh-bien", "an-phu", "chau-phu",
             "chau-thanh", "cho-moi", "phu-tan", "tri-ton"]
for i, unit in enumerate(ORG_UNITS):
    basis = i % 2
    case(unit, {"kind": "organization", "name": f"Chi bộ Đội Cảnh sát số {i + 1}"}, "reprimand",
         basis, d(CENTRAL[basis][2], 10 + i))

forms = ["reprimand"] * 30 + ["warning"] * 15 + ["expulsion"]
for i, form in enumerate(forms):
    unit = UNITS[i % len(UNITS)]
    basis = i % 2
    probationary = form != "expulsion" and i % 9 == 4
    subject = {"kind": "member", "member": f"ĐV-{1000 + i}",
               "membership": "probationary" if probationary else "full",
               "holds_post": (not probationary) and i % 3 == 0}
    case(unit, subject, form, basis, d(CENTRAL[basis][2], 20 + i // 2),
         body=COMMISSION if i % 4 == 1 else PROVINCE,
         consult=i % 5 == 0, appeal=(form == "warning" and i == 31))

# one case considered and closed without discipline: it must not count
case("thoai-son", {"kind": "member", "member": "ĐV-2000", "membership": "full", "holds_post": False},
     None, 1, "2023-05-02")

for line in lines:
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
