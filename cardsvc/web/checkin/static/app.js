// The check-in page: set-up from the provisioning URL, camera scanning (or a photo when the page has no secure
// context), a verdict decided here at once from the signed event bundle, and the server's answer reconciled in the
// background (the server wins; a changed verdict is shown and counted as a conflict). Scans the server has not
// answered wait in IndexedDB and are sent again with the same nonce.
import * as V from "./verify.js";
import { scanKey } from "./live.js";
import * as store from "./store.js";
import * as T from "./text.js";
import { makeDecoder } from "./decoder.js";

const $ = (id) => document.getElementById(id);
const SHOW_RESULT_MS = 3500; // the result stays up this long, then the page is ready again (no tap needed)
const SAME_CODE_QUIET_MS = 6000; // the same QR text is ignored while it stays in view and this long after
const ASK_TIMEOUT_MS = 4000; // a scan only the server can decide (no usable bundle): the steward is waiting
const RECONCILE_TIMEOUT_MS = 20000; // a scan already decided here: nobody waits for the server's answer
const HEARTBEAT_MS = 5000;
const HEARTBEAT_TIMEOUT_MS = 3000;
const SYNC_INTERVAL_MS = 3000;
const BUNDLE_REFRESH_MS = 120000;
const SCAN_INTERVAL_MS = 100;
const CAMERA_FRAME_SIDE = 960;
const PHOTO_SIDES = [1280, 2400]; // a phone photo is large: try it small first (fast), then larger
const HISTORY_SIZE = 8;
// Without a secure context (plain http:// on a venue's address) a browser gives a page no camera stream, no
// WebCrypto (so no signature checks here) and no service worker: the page then reads photos and the server decides.
const SECURE = window.isSecureContext && Boolean(globalThis.crypto && crypto.subtle);

const state = {
  device: null, // {token, stationId, stationName, eventId, anchor (JWK, null without a secure context)}
  anchor: null, // imported anchor key
  bundle: null, // verified event bundle
  localEntries: [], // accepted entries: {nonce, member_number, direction, at, station_id, synced}
  inflight: new Set(), // nonces being sent right now (by the scan itself or by the sync loop)
  conflicts: 0,
  lastText: null,
  lastSeen: 0,
  resetTimer: null,
  syncing: false,
  decoder: null,
  camera: false,
  audio: null,
};

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

class NetworkError extends Error {}

async function request(path, options = {}, timeout = ASK_TIMEOUT_MS) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  try {
    return await fetch(path, { ...options, signal: controller.signal, cache: "no-store" });
  } catch (error) {
    throw new NetworkError(error.message);
  } finally {
    clearTimeout(timer);
  }
}

/** A client nonce: crypto.randomUUID() exists only in a secure context; 128 random bits otherwise. */
function newNonce() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return V.hex(crypto.getRandomValues(new Uint8Array(16)));
}

function warn(message) {
  const box = $("warning");
  box.textContent = message || "";
  box.hidden = !message;
}

// --- connection badge: the browser's online/offline events and a heartbeat, not the outcome of the last scan ----

function setNet(status) {
  const pill = $("net");
  if (pill.dataset.net === status) return;
  pill.dataset.net = status;
  pill.textContent = T.NET_TEXT[status];
}

async function heartbeat() {
  if (!navigator.onLine) {
    setNet("offline");
    return;
  }
  try {
    const response = await request("/healthz", {}, HEARTBEAT_TIMEOUT_MS);
    setNet(response.ok ? "online" : "unreachable");
  } catch {
    setNet(navigator.onLine ? "unreachable" : "offline");
  }
}

function answered() {
  setNet("online");
}

// --- device set-up ---------------------------------------------------------------------------------------------

function setupCodeFromHash() {
  const match = /^#setup=([^&]+)/.exec(window.location.hash);
  if (!match) return null;
  // The code is a one-time secret: keep it out of the history and the address bar.
  window.history.replaceState(null, "", window.location.pathname);
  return decodeURIComponent(match[1]);
}

function setupCodeFromScan(text) {
  try {
    const url = new URL(text);
    if (url.origin !== window.location.origin || url.pathname !== "/checkin") return null;
    const match = /^#setup=([^&]+)/.exec(url.hash);
    return match ? decodeURIComponent(match[1]) : null;
  } catch {
    return null;
  }
}

async function provision(code) {
  document.body.dataset.phase = "provisioning";
  $("setup-message").textContent = T.MESSAGES.provisioning;
  try {
    // Trust on first use, over the same origin: pinned here and used for every later bundle. Fetched before the
    // one-time code is spent, so a failure here leaves the code usable.
    let anchorJwk = null;
    let anchor = null;
    if (SECURE) {
      const anchorResponse = await request("/.well-known/cardsvc-trust-anchor.json");
      if (!anchorResponse.ok) throw new NetworkError(`HTTP ${anchorResponse.status}`);
      anchorJwk = await anchorResponse.json();
      anchor = await V.importJwk(anchorJwk);
    }
    const response = await request("/v1/devices/provision", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("setup-message").textContent = T.provisionProblem(body.code);
      document.body.dataset.phase = state.device ? "ready" : "setup";
      return false;
    }
    const device = { token: body.device_token, stationId: body.station_id, stationName: body.station_name || "",
      eventId: body.event_id, anchor: anchorJwk, provisionedAt: Date.now() };
    await store.setValue("device", device);
    await store.deleteValue("bundle");
    await store.clear("entries");
    Object.assign(state, { device, anchor, bundle: null, localEntries: [] });
    answered();
    $("setup").hidden = true;
    $("setup-message").textContent = "";
    await refreshBundle();
    document.body.dataset.phase = "ready";
    renderHeader();
    renderSound();
    return true;
  } catch (error) {
    $("setup-message").textContent = error instanceof NetworkError ? T.MESSAGES.provisionOffline
      : T.provisionProblem(null);
    document.body.dataset.phase = state.device ? "ready" : "setup";
    return false;
  }
}

function authHeaders(token) {
  return { Authorization: `Bearer ${token}` };
}

// --- the event bundle --------------------------------------------------------------------------------------------

async function useBundle(token) {
  const bundle = await V.verifyEventBundle(token, state.anchor, nowSeconds());
  if (bundle.event.id !== state.device.eventId) throw new V.TrustError("bundle of another event");
  state.bundle = bundle;
  // Local entries the bundle already holds (synced before it was signed) are no longer needed.
  state.localEntries = state.localEntries.filter((entry) => !entry.synced || entry.at > bundle.issuedAt);
  document.body.dataset.bundle = "yes";
  renderHeader();
}

async function refreshBundle() {
  if (!state.device || !state.anchor || !navigator.onLine) return;
  try {
    const response = await request(`/v1/events/${state.device.eventId}/bundle`,
      { headers: authHeaders(state.device.token) }, 30000);
    if (response.status === 401 || response.status === 403) {
      warn(T.MESSAGES.deviceRevoked);
      return;
    }
    if (!response.ok) throw new NetworkError(`HTTP ${response.status}`);
    const token = await response.text();
    await useBundle(token);
    await store.setValue("bundle", token);
    answered();
    warn("");
  } catch (error) {
    if (!(error instanceof NetworkError)) warn(T.MESSAGES.bundleInvalid);
  }
}

/** The bundle decides here only while it is valid; an expired one is no ground for letting anyone in. */
function usableBundle() {
  return state.bundle && state.bundle.expiresAt > nowSeconds() ? state.bundle : null;
}

function renderHeader() {
  const { bundle, device } = state;
  $("event-title").textContent = bundle ? bundle.event.title : "Điểm danh";
  const station = device ? device.stationName || "Trạm điểm danh" : "";
  $("station-name").textContent = bundle ? `${station} · ${bundle.event.venue}` : station;
  $("checkin-window").textContent = bundle ? T.checkinWindow(bundle.event.opensAt, bundle.event.closesAt) : "";
  if (device) {
    const link = $("manual-link");
    link.href = `/admin/events/${encodeURIComponent(device.eventId)}#manual`;
    link.hidden = false;
  }
  if (!bundle) {
    $("bundle-info").textContent = "";
    return;
  }
  const entered = new Set(allEntries().filter((e) => e.direction === "in").map((e) => e.member_number)).size;
  $("bundle-info").textContent = `Dữ liệu tải lúc ${T.vnTime(bundle.issuedAt)} · ${bundle.roster.length} hội viên`
    + ` · đã vào ${entered}`;
}

function allEntries() {
  const fromBundle = state.bundle ? state.bundle.checkins : [];
  return [...fromBundle, ...state.localEntries];
}

// --- sound ---------------------------------------------------------------------------------------------------------

// A page may only start sound (and vibration) after a tap: the first tap after set-up turns them on.
function resumeSound() {
  try {
    state.audio = state.audio || new AudioContext();
    state.audio.onstatechange = renderSound;
    return state.audio.resume().then(renderSound, renderSound);
  } catch {
    // No audio device: the colour and the words are the result.
    return Promise.resolve();
  }
}

function unlockSound() {
  resumeSound().then(() => tone("ok"));
}

function renderSound() {
  const on = Boolean(state.audio && state.audio.state === "running");
  document.body.dataset.sound = on ? "on" : "off";
  $("sound").hidden = on || !state.device;
}

const TONES = {
  ok: { wave: "sine", notes: [[880, 0, 0.15], [1320, 0.12, 0.18]], vibrate: 80 },
  already: { wave: "triangle", notes: [[660, 0, 0.35]], vibrate: [250] },
  error: { wave: "square", notes: [[220, 0, 0.2], [220, 0.3, 0.2]], vibrate: [90, 60, 90] },
};

function tone(kind) {
  const { wave, notes, vibrate } = TONES[kind];
  if (navigator.vibrate) navigator.vibrate(vibrate);
  const ctx = state.audio;
  if (!ctx || ctx.state !== "running") return;
  try {
    for (const [frequency, offset, duration] of notes) {
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.type = wave;
      oscillator.frequency.value = frequency;
      const start = ctx.currentTime + offset;
      gain.gain.setValueAtTime(0.25, start);
      gain.gain.exponentialRampToValueAtTime(0.001, start + duration);
      oscillator.connect(gain).connect(ctx.destination);
      oscillator.start(start);
      oscillator.stop(start + duration + 0.02);
    }
  } catch {
    // As above: no sound, the screen still shows the verdict.
  }
}

// --- results -----------------------------------------------------------------------------------------------------

function stateOf(ok, reason) {
  if (ok) return "ok";
  return reason === "already_checked_in" ? "already" : "error";
}

function readyText() {
  if (!state.device) return T.READY_TEXT.setup;
  return state.camera ? T.READY_TEXT.camera : T.READY_TEXT.photo;
}

function showReady() {
  const box = $("result");
  Object.assign(box.dataset, { state: "ready", reason: "", sync: "", live: "", idCheck: "" });
  $("result-title").textContent = readyText();
  for (const id of ["result-name", "result-first", "result-detail", "result-sync"]) $(id).textContent = "";
}

/** Fill the result panel. `shown`: {ok, reason, direction, name, memberNumber, chapter, first, note, sync,
 * nonce, live, idCheck}; `first` ({at, stationId, stationName}) is the first entry of a member already checked in;
 * `live`: the card was a live code, `idCheck`: a printed card to compare with an identity document. */
function showResult(shown, { sound = true } = {}) {
  const box = $("result");
  const kind = stateOf(shown.ok, shown.reason);
  Object.assign(box.dataset, { state: kind, reason: shown.reason || "", sync: shown.sync, nonce: shown.nonce || "",
    live: shown.live ? "1" : "0", idCheck: shown.idCheck ? "1" : "0" });
  $("result-title").textContent = T.verdictTitle(shown.ok, shown.reason, shown.direction);
  $("result-name").textContent = shown.name || "";
  $("result-first").textContent = shown.first && kind === "already"
    ? T.firstEntry(shown.first, state.device.stationId, state.device.stationName) : shown.note || "";
  const parts = [];
  if (shown.memberNumber) parts.push(`Số hội viên ${shown.memberNumber}`);
  if (shown.chapter) parts.push(shown.chapter);
  if (shown.ok) parts.push(T.cardKind(shown.live, shown.idCheck));
  $("result-detail").textContent = parts.join(" · ");
  $("result-sync").textContent = T.syncText(shown.sync, shown.ok);
  if (sound) tone(kind);
  clearTimeout(state.resetTimer);
  state.resetTimer = setTimeout(showReady, SHOW_RESULT_MS);
}

function historyItem(nonce) {
  return nonce ? document.querySelector(`#recent li[data-nonce="${CSS.escape(nonce)}"]`) : null;
}

function renderHistory(item, shown) {
  item.dataset.state = stateOf(shown.ok, shown.reason);
  item.dataset.reason = shown.reason || "";
  item.dataset.sync = shown.sync;
  item.querySelector(".who").textContent = `${shown.name || "(không rõ tên)"} – ${T.verdictShort(shown.ok,
    shown.reason)}`;
  item.querySelector(".sync").textContent = T.syncText(shown.sync, shown.ok);
}

function addHistory(shown) {
  const item = document.createElement("li");
  item.dataset.nonce = shown.nonce || "";
  const who = document.createElement("div");
  who.className = "who";
  const when = document.createElement("div");
  when.className = "when";
  when.textContent = T.vnTime(nowSeconds());
  const sync = document.createElement("div");
  sync.className = "sync";
  item.append(who, when, sync);
  renderHistory(item, shown);
  const list = $("recent");
  list.prepend(item);
  while (list.children.length > HISTORY_SIZE) list.lastElementChild.remove();
}

function show(shown) {
  showResult(shown);
  addHistory(shown);
}

/** The sync line of one scan moved on (queued, confirmed): the panel if it still shows that scan, and its history
 * line, without a new sound. */
function updateShown(nonce, shown, { sound = false } = {}) {
  const box = $("result");
  if (box.dataset.nonce === nonce && box.dataset.state !== "ready") showResult(shown, { sound });
  const item = historyItem(nonce);
  if (item) renderHistory(item, shown);
}

function renderConflicts() {
  const pill = $("conflicts");
  pill.dataset.count = String(state.conflicts);
  pill.textContent = `Xung đột: ${state.conflicts}`;
  pill.hidden = state.conflicts === 0;
}

function announceChange(before, after) {
  const who = after.name || before.name || "Hội viên vừa quét";
  const when = T.vnTime(before.at);
  const text = after.ok
    ? `${who}: máy chủ xác nhận HỢP LỆ, nhưng máy này đã báo “${T.verdictShort(false, before.reason)}” lúc ${when}.`
      + " Nếu hội viên đã rời cửa, hãy mời quay lại."
    : `${who}: máy chủ báo “${T.verdictShort(false, after.reason)}”`
      + (after.first ? ` (${T.firstEntry(after.first, state.device.stationId, state.device.stationName)})` : "")
      + `, nhưng máy này đã cho vào lúc ${when}. Hãy báo cán bộ để đối chiếu.`;
  $("notice-text").textContent = text;
  $("notice").hidden = false;
}

// --- scans -------------------------------------------------------------------------------------------------------

/** POST one scan. Returns {kind: "answer", body} | {kind: "refused", status, body} | {kind: "auth"}; throws
 * NetworkError when the server cannot be reached or fails (a decided scan then stays queued). A scan decided here
 * carries the verdict this phone showed (`offline`, `local_result`), so that the server can report a member it let
 * in but the server refuses (the conflicts report). */
async function postCheckin(item, timeout) {
  const scan = { source: item.source, client_nonce: item.nonce, payload: item.payload, scanned_at: item.scannedAt };
  if (item.local) {
    scan.offline = true;
    scan.local_result = item.local.ok ? "ok" : "error";
    if (!item.local.ok && item.local.reason) scan.local_reason = String(item.local.reason).slice(0, 32);
  }
  const response = await request(`/v1/events/${item.eventId}/checkins`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders(item.token) },
    body: JSON.stringify(scan),
  }, timeout);
  if (response.status === 401 || response.status === 403) return { kind: "auth" };
  if (response.status >= 500 || response.status === 429) throw new NetworkError(`HTTP ${response.status}`);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return { kind: "refused", status: response.status, body };
  return { kind: "answer", body };
}

/** What the steward sees of the server's answer. */
function shownOfAnswer(item, answer, sync) {
  const ok = answer.result === "ok";
  const { member } = answer;
  const first = answer.first_checkin ? { at: Date.parse(answer.first_checkin.at) / 1000,
    stationId: answer.first_checkin.station_id, stationName: answer.first_checkin.station_name } : null;
  return { ok, reason: ok ? null : answer.reason || "refused_by_server", direction: answer.direction,
    name: member ? member.full_name : item.shown && item.shown.name,
    memberNumber: member ? member.member_number : item.shown && item.shown.memberNumber,
    chapter: member ? member.chapter.name : item.shown && item.shown.chapter, first, sync, nonce: item.nonce,
    live: answer.live === true, idCheck: answer.id_check === true };
}

async function recordEntry(entry) {
  state.localEntries.push(entry);
  await store.put("entries", entry);
}

async function forgetEntry(nonce) {
  state.localEntries = state.localEntries.filter((e) => e.nonce !== nonce);
  await store.remove("entries", nonce);
}

/** The server answered a scan decided here (now or from the queue): its answer wins. */
async function settle(item, outcome) {
  await store.remove("queue", item.nonce);
  const answer = outcome.kind === "answer" ? outcome.body : { result: "error", reason: "refused_by_server" };
  const ok = answer.result === "ok";
  const entry = state.localEntries.find((e) => e.nonce === item.nonce);
  if (ok && entry) {
    entry.synced = true;
    await store.put("entries", entry);
  } else if (ok) {
    await recordEntry({ nonce: item.nonce, member_number: answer.member.member_number, direction: answer.direction,
      at: Date.parse(item.scannedAt) / 1000, station_id: item.stationId, synced: true });
  } else if (entry) {
    await forgetEntry(item.nonce);
  }
  const changed = Boolean(item.local) && item.local.ok !== ok;
  const shown = shownOfAnswer(item, answer, changed ? "changed" : "synced");
  updateShown(item.nonce, shown, { sound: changed });
  if (changed) {
    state.conflicts += 1;
    await store.setValue("conflicts", state.conflicts);
    renderConflicts();
    announceChange({ ...item.local, name: item.shown && item.shown.name, at: Date.parse(item.scannedAt) / 1000 },
      shown);
  }
  renderHeader();
  renderMatches();
  // The server knew something the bundle did not (another door, a revocation): take a fresh one.
  if (!item.local || item.local.ok !== ok || item.local.reason !== shown.reason) refreshBundle();
}

function markQueued(item) {
  if (!item.shown) return;
  updateShown(item.nonce, { ...item.shown, sync: "queued" });
}

/** Send one decided scan. Returns "settled" (the server answered), "queued" (no answer: it stays queued), "auth"
 * (the device was refused: it stays queued) or "busy" (already being sent). */
async function send(item) {
  if (state.inflight.has(item.nonce)) return "busy";
  state.inflight.add(item.nonce);
  try {
    const outcome = await postCheckin(item, RECONCILE_TIMEOUT_MS);
    answered();
    if (outcome.kind === "auth") {
      warn(T.MESSAGES.deviceRevoked);
      return "auth";
    }
    await settle(item, outcome);
    return "settled";
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    heartbeat();
    return "queued";
  } finally {
    state.inflight.delete(item.nonce);
  }
}

/** A scan just decided here goes to the server in the background; unanswered, it waits for the sync loop. */
async function reconcile(item) {
  const sent = await send(item);
  if (sent === "queued" || sent === "auth") markQueued(item);
  await renderQueue();
}

function claimsShown(verdict, local) {
  const { member } = local;
  const claims = verdict.claims || null;
  return {
    name: member ? member.name : claims ? claims.display_name : "",
    memberNumber: member ? member.member_number : claims ? claims.member_number : "",
    chapter: member ? member.chapter_name : claims ? claims.chapter_code : "",
  };
}

/** Decide with the bundle at once (the same verify() and event rules as the server), show it, then reconcile. */
async function decideHere(bundle, item, at) {
  const verdict = await V.verify(item.payload, bundle.trust, bundle.statusLists, at);
  const local = V.eventDecision(bundle, verdict, allEntries(), at);
  item.local = { ok: local.ok, reason: local.reason, direction: local.direction,
    member_number: local.member ? local.member.member_number : null };
  const first = local.first ? { at: local.first.at, stationId: local.first.station_id ?? null, stationName: null }
    : null;
  item.shown = { ...claimsShown(verdict, local), ok: local.ok, reason: local.reason, direction: local.direction,
    first, sync: "pending", nonce: item.nonce, live: verdict.live, idCheck: local.idCheck };
  // Queued (and the entry kept) before the verdict is shown: a reload or a crash cannot lose the scan.
  const saving = [store.put("queue", item)];
  if (local.ok) {
    saving.push(recordEntry({ nonce: item.nonce, member_number: local.member.member_number,
      direction: local.direction, at, station_id: item.stationId, synced: false }));
  }
  await Promise.all(saving);
  show(item.shown);
  renderQueue();
  renderHeader();
  reconcile(item);
}

/** No usable bundle (no secure context, or none downloaded yet): only the server can decide, so ask it now. */
async function askServer(item) {
  let outcome;
  try {
    outcome = await postCheckin(item, ASK_TIMEOUT_MS);
    answered();
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    heartbeat();
    show({ ok: false, reason: "server_unreachable", note: T.MESSAGES.noServerNoData, sync: "local",
      nonce: item.nonce });
    return;
  }
  if (outcome.kind === "auth") {
    warn(T.MESSAGES.deviceRevoked);
    show({ ok: false, reason: "not_provisioned", sync: "local", nonce: item.nonce });
    return;
  }
  const answer = outcome.kind === "answer" ? outcome.body : { result: "error", reason: "refused_by_server" };
  if (answer.result === "ok") {
    await recordEntry({ nonce: item.nonce, member_number: answer.member.member_number, direction: answer.direction,
      at: nowSeconds(), station_id: item.stationId, synced: true });
  }
  show(shownOfAnswer(item, answer, "server"));
  renderHeader();
}

async function handleScan(text, source, { deliberate = false } = {}) {
  const now = Date.now();
  // A live code changes every 30 s while its card stays in view: the same card is the same scan.
  const key = scanKey(text);
  if (!deliberate && key === state.lastText && now - state.lastSeen < SAME_CODE_QUIET_MS) {
    state.lastSeen = now; // still in view: not a new scan
    return;
  }
  state.lastText = key;
  state.lastSeen = now;
  const setup = setupCodeFromScan(text);
  if (setup) {
    await provision(setup);
    return;
  }
  if (!state.device) {
    show({ ok: false, reason: "not_provisioned", sync: "local" });
    return;
  }
  const at = nowSeconds();
  const item = { nonce: newNonce(), eventId: state.device.eventId, token: state.device.token,
    stationId: state.device.stationId, source, payload: text, scannedAt: new Date(at * 1000).toISOString(),
    queuedAt: Date.now(), local: null, shown: null };
  const bundle = usableBundle();
  if (bundle) await decideHere(bundle, item, at);
  else await askServer(item);
}

async function renderQueue() {
  const count = (await store.all("queue")).length;
  const pill = $("queue");
  pill.dataset.count = String(count);
  pill.textContent = `Chờ gửi: ${count}`;
}

/** Send queued scans oldest first (same nonces: the server answers a retry from its record). */
async function syncQueue() {
  if (state.syncing || !state.device || !navigator.onLine) return;
  state.syncing = true;
  try {
    const items = (await store.all("queue")).sort((a, b) => a.queuedAt - b.queuedAt);
    for (const item of items) {
      const sent = await send(item);
      if (sent === "queued" || sent === "auth") break;
    }
  } finally {
    state.syncing = false;
    await renderQueue();
  }
}

// --- camera and photos -------------------------------------------------------------------------------------------

async function decoder() {
  state.decoder = state.decoder || makeDecoder($("frame"));
  return state.decoder;
}

function cameraProblem(kind) {
  state.camera = false;
  document.body.dataset.camera = kind;
  const help = T.CAMERA_HELP[kind];
  $("camera-help-title").textContent = help.title;
  $("camera-help-steps").replaceChildren(...help.steps.map((step) => {
    const item = document.createElement("li");
    item.textContent = step;
    return item;
  }));
  $("camera-help").hidden = false;
  if ($("result").dataset.state === "ready") showReady();
}

function problemOf(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "denied";
    case "NotFoundError":
    case "OverconstrainedError":
      return "missing";
    case "NotReadableError":
    case "AbortError":
      return "busy";
    default:
      return "failed";
  }
}

async function scanWith(source, maxSide, scanSource, options) {
  const reader = await decoder();
  let text = null;
  try {
    text = await reader.decode(source, maxSide);
  } catch {
    text = null;
  }
  if (text) {
    try {
      await handleScan(text, scanSource, options);
    } catch {
      warn(T.MESSAGES.scanFailed);
    }
  }
  return text;
}

async function startCamera() {
  if (!SECURE || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    cameraProblem("insecure");
    return;
  }
  const video = $("video");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } } });
  } catch (error) {
    cameraProblem(problemOf(error));
    return;
  }
  video.srcObject = stream;
  await video.play().catch(() => {});
  const reader = await decoder();
  document.body.dataset.decoder = reader.name;
  document.body.dataset.camera = "on";
  state.camera = true;
  if ($("result").dataset.state === "ready") showReady();
  for (;;) {
    if (video.readyState >= 2 && !document.hidden) await scanWith(video, CAMERA_FRAME_SIDE, "qr_camera");
    await sleep(SCAN_INTERVAL_MS);
  }
}

/** A photo taken with the phone's camera app (works without a secure context): find the QR in it. */
async function scanPhoto() {
  const input = $("photo");
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  const message = $("photo-message");
  message.textContent = T.MESSAGES.photoReading;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    message.textContent = T.MESSAGES.photoUnreadable;
    return;
  }
  let text = null;
  for (const side of PHOTO_SIDES) {
    text = await scanWith(bitmap, side, "qr_camera", { deliberate: true });
    if (text) break;
  }
  bitmap.close();
  message.textContent = text ? "" : T.MESSAGES.photoNoCode;
}

// --- manual search -----------------------------------------------------------------------------------------------

function renderMatches() {
  const list = $("matches");
  list.replaceChildren();
  const query = $("search").value;
  if (!query.trim()) return;
  if (!state.bundle) {
    const item = document.createElement("li");
    item.textContent = T.MESSAGES.searchNeedsData;
    list.append(item);
    return;
  }
  const entries = allEntries();
  for (const entry of V.searchRoster(state.bundle.roster, query)) {
    const mine = entries.filter((e) => e.member_number === entry.member_number).sort((a, b) => a.at - b.at);
    const item = document.createElement("li");
    item.dataset.memberNumber = entry.member_number;
    item.dataset.entered = mine.length ? "1" : "0";
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = entry.name;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `Số hội viên ${entry.member_number} · ${entry.chapter_name} · `
      + (mine.length ? `đã vào lúc ${T.vnTime(mine[0].at)}` : "chưa điểm danh");
    item.append(who, meta);
    list.append(item);
  }
}

// --- start -------------------------------------------------------------------------------------------------------

async function loadStored() {
  state.device = (await store.getValue("device")) || null;
  state.localEntries = await store.all("entries");
  state.conflicts = (await store.getValue("conflicts")) || 0;
  if (!state.device || !state.device.anchor || !SECURE) return;
  try {
    state.anchor = await V.importJwk(state.device.anchor);
    const stored = await store.getValue("bundle");
    if (stored) await useBundle(stored);
  } catch (error) {
    warn(error instanceof V.TrustError && /expired/.test(error.message) ? T.MESSAGES.bundleExpired
      : T.MESSAGES.storedUnusable);
  }
}

async function main() {
  document.body.dataset.secure = SECURE ? "yes" : "no";
  document.body.dataset.bundle = "no";
  if (SECURE && "serviceWorker" in navigator) {
    navigator.serviceWorker.register("/checkin/sw.js", { scope: "/checkin" }).catch(() => {});
  }
  $("sound").addEventListener("click", unlockSound);
  // Any first tap turns sound on too (silently); the button also plays a tone so the steward hears it works.
  document.addEventListener("pointerdown", resumeSound);
  $("search").addEventListener("input", renderMatches);
  $("photo").addEventListener("change", scanPhoto);
  $("notice-close").addEventListener("click", () => { $("notice").hidden = true; });
  window.addEventListener("online", () => { heartbeat(); syncQueue(); refreshBundle(); });
  window.addEventListener("offline", () => setNet("offline"));
  const code = setupCodeFromHash();
  await loadStored();
  renderHeader();
  renderConflicts();
  if (code) await provision(code);
  if (state.device) {
    document.body.dataset.phase = "ready";
    // The stored bundle decides from the first scan; a fresh one is fetched in the background.
    if (!code) refreshBundle();
  } else {
    document.body.dataset.phase = "setup";
    $("setup").hidden = false;
  }
  showReady();
  renderSound();
  await renderQueue();
  setInterval(syncQueue, SYNC_INTERVAL_MS);
  setInterval(refreshBundle, BUNDLE_REFRESH_MS);
  setInterval(heartbeat, HEARTBEAT_MS);
  heartbeat();
  syncQueue();
  startCamera();
}

main();
