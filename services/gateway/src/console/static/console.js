// The console's script: no framework, nothing loaded from elsewhere.
// - sign-in: a token file is read into the text box;
// - forms: sent with fetch, the refusal shown next to the field it names;
// - live: the log's event stream refreshes the page's [data-live] sections;
// - verify: an event's inclusion proof and the checkpoint's signature are checked
//   here, with WebCrypto (SHA-256; Ed25519 where the browser has it).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function readTokenFile() {
  const file = document.getElementById("token-file");
  if (!file) return;
  file.addEventListener("change", async () => {
    if (file.files.length) document.getElementById("token").value = (await file.files[0].text()).trim();
  });
}

function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((e) => { e.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

function showRefusal(form, answer) {
  const text = `${answer.message_vi || "Yêu cầu bị từ chối."} (${answer.code || "error"}: ${answer.detail || ""})`;
  const slot = answer.field && form.querySelector(`.field-error[data-field="${answer.field}"]`);
  if (slot) {
    slot.textContent = text;
    const input = form.querySelector(`[name="${answer.field}"]`);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } else {
    form.querySelector(".form-error").textContent = text;
  }
}

// One Idempotency-Key per filled form: a second click, or sending again after the
// network failed (the first may have been recorded), carries the same key and records
// nothing twice. A changed field or an answer (accepted or refused) ends the key.
function formKey(form) {
  if (!form.dataset.key) form.dataset.key = crypto.randomUUID();
  return form.dataset.key;
}

async function submitForm(event) {
  event.preventDefault();
  const form = event.target;
  if (form.dataset.sending) return;
  const button = form.querySelector("button[type=submit]");
  form.dataset.sending = "1";
  if (button) button.disabled = true;
  clearErrors(form);
  const result = document.getElementById("result");
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Idempotency-Key": formKey(form) },
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
    });
    if (!(response.headers.get("content-type") || "").includes("json")) {
      // A sign-in page (the session ended) or a proxy's page: nothing was recorded.
      delete form.dataset.key;
      result.textContent = "";
      form.querySelector(".form-error").textContent =
        "Phiên đăng nhập đã hết hoặc máy chủ không trả lời: tải lại trang, đăng nhập lại rồi gửi lại. (Session ended.)";
      return;
    }
    const answer = await response.json();
    delete form.dataset.key;
    if (response.ok) {
      const a = answer.accepted;
      result.textContent = `Đã ghi nhận: mã ${a.aggregate_id}, vị trí nhật ký ${a.position}.`;
      result.dataset.position = a.position;
      form.reset();
      refresh(a.position);
    } else {
      result.textContent = "";
      showRefusal(form, answer);
    }
  } catch {
    // No answer: it may have been recorded. The key is kept, so sending again is safe.
    result.textContent = "";
    form.querySelector(".form-error").textContent =
      "Không nhận được trả lời (mất kết nối?). Gửi lại sẽ không ghi trùng. (No answer: sending again is safe.)";
  } finally {
    delete form.dataset.sending;
    if (button) button.disabled = false;
  }
}

// Refreshes the live sections up to the newest position asked for: at most one fetch
// runs at a time, and a burst of events while it runs costs one more fetch, not one
// each (every fetch renders the whole page).
let wanted = 0;
let refreshing = false;

// Says, above the page, that its figures could not be brought up to date.
function stale(yes) {
  const status = document.getElementById("live-status");
  if (!status) return;
  status.textContent = yes
    ? "Số liệu trên trang chưa cập nhật được (trang sẽ tự thử lại; hoặc tải lại trang). (Not up to date.)"
    : "";
}
// Fetches the page again (`url`) and puts its live sections in place of these: only
// those that changed, and the focused control (by id) keeps the focus. False when the
// answer is not this page (refused, or the sign-in page a lost session redirects to).
async function swapLive(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok || response.redirected) return false;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  const sections = document.querySelectorAll("[data-live]");
  const pairs = [...sections].map((section) => [section, fresh.querySelector(`[data-live="${section.dataset.live}"]`)]);
  if (pairs.length && pairs.every(([, next]) => !next)) return false;
  const focused = document.activeElement && document.activeElement.id;
  for (const [section, next] of pairs) {
    if (next && section.innerHTML !== next.innerHTML) section.innerHTML = next.innerHTML;
  }
  if (focused && document.activeElement === document.body) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
  return true;
}

// One fetch of the page at a time, whatever asked for it (an event, the clock).
async function once(url) {
  refreshing = true;
  try {
    const ok = await swapLive(url);
    stale(!ok);
    return ok;
  } catch {
    stale(true);
    return false;
  } finally {
    refreshing = false;
  }
}

async function refresh(position) {
  wanted = Math.max(wanted, Number(position) || 0);
  if (refreshing) return;
  while (Number(document.body.dataset.livePosition || 0) < wanted) {
    const target = wanted;
    const url = new URL(location.href);
    url.searchParams.set("min_position", target);
    // On failure the next event or submission tries again.
    if (!(await once(url))) return;
    document.body.dataset.livePosition = target;
  }
}

// A page whose figures change without an event (a sync link, the witness) is fetched
// again every few seconds, until the reader pauses it (WCAG 2.2.2).
function refreshEvery() {
  const marked = document.querySelector("[data-refresh-seconds]");
  if (!marked) return false;
  const seconds = Number(marked.dataset.refreshSeconds) || 10;
  const pause = document.getElementById("pause-refresh");
  let paused = false;
  if (pause) {
    pause.hidden = false;
    pause.addEventListener("click", () => {
      paused = !paused;
      pause.setAttribute("aria-pressed", String(paused));
    });
  }
  setInterval(() => {
    if (!paused && !refreshing && !document.hidden) once(location.href);
  }, seconds * 1000);
  return true;
}

function followLog() {
  if (!document.querySelector("[data-live]") || !window.EventSource) return;
  const source = new EventSource("/live");
  source.onmessage = (e) => refresh(String(e.lastEventId).split(":")[0]);
  // Reopened after an interruption: catch up with what was missed while it was down.
  source.addEventListener("open", () => {
    document.body.dataset.live = "open";
    if (wanted > Number(document.body.dataset.livePosition || 0)) refresh(wanted);
    else stale(false);
  });
  // The browser reconnects by itself, unless the gateway refused the stream.
  source.addEventListener("error", () => stale(true));
}

// ---- verification (RFC 9162 inclusion, C2SP signed note) ----
const enc = new TextEncoder();
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const sha256 = async (data) => new Uint8Array(await crypto.subtle.digest("SHA-256", data));
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function rootFromInclusion(index, size, leaf, path) {
  if (index >= size) throw new Error("chỉ số lá vượt kích thước cây");
  let fn = index, sn = size - 1;
  let r = await sha256(concat(new Uint8Array([0]), leaf));
  for (const p of path) {
    if (sn === 0) throw new Error("đường dẫn chứng minh quá dài");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(new Uint8Array([1]), p, r));
      while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await sha256(concat(new Uint8Array([1]), r, p));
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("đường dẫn chứng minh quá ngắn");
  return r;
}

function parseCheckpoint(note) {
  const split = note.lastIndexOf("\n\n");
  const text = note.slice(0, split + 1);
  const [origin, size, root] = text.split("\n");
  const signatures = note.slice(split + 2).split("\n").filter((l) => l.startsWith("\u2014 "))
    .map((l) => { const [name, sig] = l.slice(2).split(" "); return { name, sig: b64(sig) }; });
  return { text, origin, size: Number(size), root: b64(root), signatures };
}

// The note's signature by `vkey` (name+hexhash+base64(0x01 ‖ key)): true, false, or
// null when this browser has no Ed25519.
async function checkSignature(cp, vkey) {
  // The key itself is standard base64, which may hold "+": split at the first two only.
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  const [name, keyHash, key] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  const raw = b64(key);
  const sig = cp.signatures.find((s) => s.name === name && hex(s.sig.slice(0, 4)) === keyHash);
  if (!sig) return false;
  try {
    const pub = await crypto.subtle.importKey("raw", raw.slice(1), { name: "Ed25519" }, false, ["verify"]);
    return await crypto.subtle.verify({ name: "Ed25519" }, pub, sig.sig.slice(4), enc.encode(cp.text));
  } catch (e) {
    return null;
  }
}

async function verify(button) {
  const out = document.getElementById("verify-result");
  out.className = "";
  out.textContent = "Đang kiểm chứng…";
  try {
    const m = await (await fetch(button.dataset.proof, { credentials: "same-origin" })).json();
    const cp = parseCheckpoint(m.checkpoint);
    const inc = m.inclusion;
    if (inc.tree_size !== cp.size) throw new Error("chứng minh không cùng kích thước với điểm kiểm tra");
    const leaf = b64(inc.leaf_data);
    const eventId = button.dataset.proof.split("/").pop();
    if (JSON.parse(new TextDecoder().decode(leaf)).event_id !== eventId) throw new Error("lá không phải sự kiện này");
    const root = await rootFromInclusion(inc.leaf_index, inc.tree_size, leaf, inc.hashes.map(b64));
    if (!same(root, cp.root)) throw new Error("gốc tính được khác gốc đã ký");
    const key = (m.keys || []).find((k) => k.origin === cp.origin);
    const signed = key ? await checkSignature(cp, key.key) : false;
    if (signed === false) throw new Error("chữ ký của điểm kiểm tra không hợp lệ");
    const sigText = signed ? "chữ ký Ed25519 hợp lệ" : "trình duyệt không kiểm được chữ ký Ed25519";
    out.className = "verified";
    out.dataset.outcome = "verified";
    out.textContent = `Đã kiểm chứng: sự kiện là lá ${inc.leaf_index} của cây ${cp.size} lá, gốc ${hex(cp.root).slice(0, 16)}…, điểm kiểm tra “${cp.origin}”, ${sigText}. (Inclusion verified.)`;
  } catch (e) {
    out.className = "failed";
    out.dataset.outcome = "failed";
    out.textContent = `Kiểm chứng thất bại: ${e.message}. (Verification failed.)`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  readTokenFile();
  document.querySelectorAll("form[data-command]").forEach((f) => {
    f.addEventListener("submit", submitForm);
    f.addEventListener("input", () => { delete f.dataset.key; });
  });
  // Delegated: a live refresh replaces the history's buttons.
  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("button.verify");
    if (button) verify(button);
  });
  // A page fetched on a clock does not also follow the log.
  if (!refreshEvery()) followLog();
});
