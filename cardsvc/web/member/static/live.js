// The live card on the member's phone (docs/card-format.md §8): activate it once with an officer's one-time code,
// then show a QR that changes every 30 seconds and that no screenshot can pass. Works offline once activated.
//
// The page makes a non-extractable WebCrypto key (Ed25519 where the browser has it, else ECDSA P-256) and keeps it
// in IndexedDB; only the public key is sent. The server answers with the bound credential, kept here too. Every
// time step the page signs ["LiveProof1", card_id, step, h''] with the key (an ECDSA signature normalised to low S,
// as verifiers require) and draws [step, proof, credential] as digits in a QR code. The step comes from the phone's
// clock corrected by the offset learned from the server whenever it is reachable.
import { encode } from "./vendor/uqr.mjs";

const PAGE = location.pathname.replace(/\/+$/, "");
const STEP_SECONDS = 30;
const CHECK_MS = 5 * 60 * 1000;
const P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n;
const DB_NAME = "cardsvc-live";
const STORE = "phones";

const T = {
  vi: {
    title: "Thẻ động (chống ảnh chụp màn hình)",
    intro: "Bật thẻ động để đưa mã QR thay đổi sau mỗi 30 giây: ảnh chụp hay bản sao mã không qua được cửa. "
      + "Cần mã kích hoạt do cán bộ Hội đưa cho chị.",
    code: "Mã kích hoạt (8 chữ số)",
    activate: "Bật thẻ động trên điện thoại này",
    activating: "Đang bật…",
    caption: "Mã động – tự đổi sau {n} giây. Không chụp màn hình: ảnh chụp không dùng được.",
    deactivate: "Tắt thẻ động trên điện thoại này",
    wrong_code: "Mã kích hoạt sai hoặc đã hết hạn. Xin cán bộ Hội mã mới.",
    no_card: "Chưa có thẻ đang hiệu lực để bật thẻ động.",
    offline: "Cần có mạng để bật thẻ động.",
    failed: "Không bật được thẻ động ({e}).",
    superseded: "Thẻ động đã được bật trên một điện thoại khác. Điện thoại này không còn dùng thẻ động.",
    ended: "Thẻ động trên điện thoại này đã tắt.",
    unsupported: "Trình duyệt này không tạo được khóa an toàn: hãy dùng thẻ in hoặc mã QR ở trên.",
  },
  en: {
    title: "Live card (screenshots do not pass)",
    intro: "Turn on the live card to show a QR code that changes every 30 seconds: a photo or a copy of it does not "
      + "pass the door. You need an activation code from your chapter's officer.",
    code: "Activation code (8 digits)",
    activate: "Turn on the live card on this phone",
    activating: "Turning on…",
    caption: "Live code – changes in {n} seconds. Screenshots do not work.",
    deactivate: "Turn off the live card on this phone",
    wrong_code: "The activation code is wrong or has expired. Ask your officer for a new one.",
    no_card: "There is no valid card to turn into a live card.",
    offline: "A connection is needed to turn on the live card.",
    failed: "The live card could not be turned on ({e}).",
    superseded: "The live card was turned on on another phone. This phone no longer shows it.",
    ended: "The live card on this phone is off.",
    unsupported: "This browser cannot make a secure key: use the printed card or the QR code above.",
  },
};

// view: what the section shows now ("live:<step>:<lang>" or "form:…"); rebuilt only when it changes, so that the
// once-a-second tick never wipes a code being typed.
const state = { record: null, step: null, message: null, busy: false, view: null };

function lang() { try { return localStorage.getItem("lang") === "en" ? "en" : "vi"; } catch { return "vi"; } }
function t(key, params = {}) {
  return Object.entries(params).reduce((text, [name, value]) => text.replace(`{${name}}`, value), T[lang()][key]);
}
function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.textContent = text;
  return node;
}

// --- storage: one record per card page, the CryptoKey stored as it is (structured clone, still non-extractable) ---

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function withStore(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}
const loadRecord = () => withStore("readonly", (store) => store.get(PAGE));
const saveRecord = (record) => withStore("readwrite", (store) => store.put(record, PAGE));
const removeRecord = () => withStore("readwrite", (store) => store.delete(PAGE));

// --- the phone's key ---------------------------------------------------------------------------------------------

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function newKey() {
  try {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return { algorithm: "Ed25519", privateKey: pair.privateKey, jwk: { kty: "OKP", crv: "Ed25519", x: b64url(raw) } };
  } catch {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)); // 04 || x || y
    return { algorithm: "ES256", privateKey: pair.privateKey,
      jwk: { kty: "EC", crv: "P-256", x: b64url(raw.slice(1, 33)), y: b64url(raw.slice(33, 65)) } };
  }
}

// --- the live code -------------------------------------------------------------------------------------------------

function uint(value) {
  if (value < 24) return [value];
  if (value < 0x100) return [0x18, value];
  if (value < 0x10000) return [0x19, value >> 8, value & 0xff];
  return [0x1a, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

function fromHex(text) { return new Uint8Array(text.match(/../g).map((pair) => parseInt(pair, 16))); }

function proofInput(cardId, step) {
  return new Uint8Array([0x84, 0x4a, ...new TextEncoder().encode("LiveProof1"), 0x48, ...cardId, ...uint(step), 0x40]);
}

function toBigInt(bytes) { return bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n); }
function toBytes(value, size) {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i -= 1) { out[i] = Number(value & 0xffn); value >>= 8n; }
  return out;
}

async function sign(record, data) {
  if (record.algorithm === "Ed25519") {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, record.privateKey, data));
  }
  // WebCrypto's ECDSA gives r || s with either s; verifiers accept only s ≤ n/2 (docs/card-format.md §1).
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, record.privateKey,
    data));
  const s = toBigInt(signature.slice(32));
  if (s > P256_ORDER / 2n) signature.set(toBytes(P256_ORDER - s, 32), 32);
  return signature;
}

function digits(bytes) {
  const width = { 1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15, 7: 17 };
  let out = "";
  for (let i = 0; i < bytes.length; i += 7) {
    const group = bytes.slice(i, i + 7);
    out += toBigInt(group).toString().padStart(width[group.length], "0");
  }
  return out;
}

async function liveText(record, step) {
  const proof = await sign(record, proofInput(fromHex(record.cardId), step));
  return `8402${digits(new Uint8Array([0x83, ...uint(step), 0x58, 0x40, ...proof, ...record.credential]))}`;
}

function qrSvg(text) {
  const { size, data } = encode(text, { ecc: "M", border: 4 });
  let path = "";
  data.forEach((row, y) => row.forEach((dark, x) => { if (dark) path += `M${x} ${y}h1v1h-1z`; }));
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" shape-rendering="crispEdges">`
    + `<rect width="${size}" height="${size}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`;
}

const serverNow = () => Date.now() / 1000 + (state.record ? state.record.offset : 0);

// --- the section on the page --------------------------------------------------------------------------------------

function section() {
  let root = document.getElementById("live");
  if (root) return root;
  root = el("section", { id: "live", class: "live", "aria-live": "polite" });
  const anchor = document.getElementById("qr-box");
  anchor.parentNode.insertBefore(root, anchor.nextSibling);
  return root;
}

function cardActive() {
  const card = document.getElementById("card");
  return card !== null && card.getAttribute("data-state") === "active";
}

async function render() {
  // The link was revoked: card.js replaced the card with the notice, and the saved card is gone.
  if (!document.getElementById("qr-box")) return;
  const root = section();
  const card = document.getElementById("card");
  const live = state.record !== null && cardActive();
  card.setAttribute("data-live", live ? "on" : "off");
  root.hidden = !cardActive() && !state.message;
  root.setAttribute("data-live-state", live ? "on" : state.message || "off");
  if (live) {
    const now = serverNow();
    const step = Math.floor(now / STEP_SECONDS);
    const view = `live:${step}:${lang()}`;
    if (view !== state.view) {
      const text = await liveText(state.record, step);
      state.step = step;
      state.view = view;
      root.replaceChildren();
      const figure = el("figure", { class: "qr live-qr" });
      const img = el("img", { id: "live-qr", alt: t("title"), "data-step": String(step), "data-algorithm":
        state.record.algorithm });
      img.src = `data:image/svg+xml;base64,${btoa(qrSvg(text))}`;
      const caption = el("figcaption", { id: "live-caption" });
      const bar = el("div", { class: "live-bar", "aria-hidden": "true" });
      figure.append(img, bar, caption);
      const off = el("button", { type: "button", id: "live-off", class: "live-off" }, t("deactivate"));
      off.addEventListener("click", deactivate);
      root.append(el("h2", {}, t("title")), figure, off);
    }
    const left = Math.max(1, Math.ceil((state.step + 1) * STEP_SECONDS - now));
    document.getElementById("live-caption").textContent = t("caption", { n: left });
    return;
  }
  const view = `form:${cardActive()}:${state.busy}:${state.message}:${lang()}`;
  if (view === state.view) return;
  state.step = null;
  state.view = view;
  root.replaceChildren(el("h2", {}, t("title")));
  if (state.message) root.append(el("p", { class: "notice", id: "live-message" }, t(state.message)));
  if (!cardActive()) return;
  if (!window.isSecureContext || !crypto.subtle || !window.indexedDB) {
    root.append(el("p", {}, t("unsupported")));
    return;
  }
  const form = el("form", { id: "live-form", class: "live-form" });
  const label = el("label", { for: "live-code" }, t("code"));
  const input = el("input", { id: "live-code", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
    pattern: "[0-9]{8}", maxlength: "8", required: "" });
  const button = el("button", { type: "submit", id: "live-on" }, t(state.busy ? "activating" : "activate"));
  button.disabled = state.busy;
  form.append(el("p", {}, t("intro")), label, input, button);
  form.addEventListener("submit", (event) => { event.preventDefault(); activate(input.value.trim()); });
  root.append(form);
}

function offsetFrom(serverTime, sentAt) {
  // The server's clock at the middle of the round trip, against the phone's.
  return Date.parse(serverTime) / 1000 - (sentAt + Date.now()) / 2000;
}

async function activate(code) {
  if (state.busy) return;
  state.busy = true;
  state.message = null;
  await render();
  try {
    const key = await newKey();
    const sentAt = Date.now();
    const response = await fetch(`${PAGE}/binding`, {
      method: "POST", headers: { "Content-Type": "application/json" }, credentials: "omit", cache: "no-store",
      body: JSON.stringify({ code, public_key: key.jwk }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      state.message = body.code === "invalid_code" ? "wrong_code" : body.code === "no_active_card" ? "no_card"
        : "failed";
      return;
    }
    const credential = Uint8Array.from(atob(body.credential_base64), (c) => c.charCodeAt(0));
    state.record = { algorithm: key.algorithm, privateKey: key.privateKey, credential, cardId: body.card_id,
      bindingId: body.binding_id, offset: offsetFrom(body.server_time, sentAt) };
    await saveRecord(state.record);
  } catch (error) {
    state.message = error instanceof TypeError ? "offline" : "failed";
  } finally {
    state.busy = false;
    await render();
  }
}

async function forget(message) {
  state.record = null;
  state.message = message;
  await removeRecord().catch(() => {});
  await render();
}

async function deactivate() {
  // One tap: the server ends the binding; the key and the credential leave this phone at once either way.
  fetch(`${PAGE}/binding`, { method: "DELETE", credentials: "omit", cache: "no-store" }).catch(() => {});
  await forget("ended");
}

/** Learn the clock offset and whether this phone's binding is still the card's (another phone, an officer). */
async function check() {
  if (!state.record) return;
  try {
    const sentAt = Date.now();
    const response = await fetch(`${PAGE}/binding`, { credentials: "omit", cache: "no-store" });
    if (response.status === 404) { await forget(null); return; }
    if (!response.ok) return;
    const body = await response.json();
    if (body.binding_id !== state.record.bindingId) {
      await forget(body.binding_id === null ? "ended" : "superseded");
      return;
    }
    state.record.offset = offsetFrom(body.server_time, sentAt);
    await saveRecord(state.record);
  } catch {
    // Offline: the saved offset stands.
  }
}

async function start() {
  if (!document.getElementById("qr-box")) return; // the "link gone" page
  try { state.record = (await loadRecord()) || null; } catch { state.record = null; }
  await render();
  await check();
  await render();
  setInterval(() => { render().catch(() => {}); }, 1000);
  setInterval(check, CHECK_MS);
  window.addEventListener("online", check);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) check(); });
  const toggle = document.getElementById("lang");
  if (toggle) toggle.addEventListener("click", () => { setTimeout(render, 0); });
}

start();
