// The check-in page: set-up from the provisioning URL, continuous camera scanning, local verification against the
// signed event bundle, the server's answer when it can be reached, and a local queue (same nonces) when it cannot.
import * as V from "./verify.js";
import { needsIdCheck, scanKey } from "./live.js";
import * as store from "./store.js";

const $ = (id) => document.getElementById(id);
const SHOW_RESULT_MS = 3500; // the result stays up this long, then the page is ready again (no tap needed)
const SAME_CODE_QUIET_MS = 6000; // the same QR text is ignored while it stays in view and this long after
const REQUEST_TIMEOUT_MS = 4000;
const SYNC_INTERVAL_MS = 3000;
const BUNDLE_REFRESH_MS = 120000;
const SCAN_INTERVAL_MS = 120;
const MAX_FRAME_SIDE = 960;
const HISTORY_SIZE = 8;

const LABELS = {
  ok_in: "HỢP LỆ – MỜI VÀO",
  ok_out: "HỢP LỆ – RA",
  malformed: "Mã không hợp lệ",
  unsupported_version: "Phiên bản thẻ không được hỗ trợ",
  unknown_key: "Thẻ không do Hội phát hành",
  bad_signature: "Chữ ký sai – thẻ có thể bị giả",
  not_yet_valid: "Thẻ chưa có hiệu lực",
  expired: "Thẻ đã hết hạn",
  revoked: "Thẻ đã bị thu hồi",
  suspended: "Thẻ đang bị tạm đình chỉ",
  superseded: "Thẻ cũ – đã được thay bằng thẻ mới",
  key_retired: "Khóa ký của thẻ đã bị thu hồi",
  not_eligible: "Không có trong danh sách sự kiện",
  already_checked_in: "Đã điểm danh trước đó",
  outside_window: "Ngoài giờ điểm danh",
  event_closed: "Sự kiện đã đóng",
  no_bundle: "Chưa có dữ liệu sự kiện",
  not_provisioned: "Trạm chưa được thiết lập",
  holder_proof_invalid: "Bản sao thẻ điện tử – cần mã động trên điện thoại chủ thẻ",
  stale_live_code: "Mã động đã cũ – ảnh chụp hoặc đồng hồ sai",
  live_code_required: "Sự kiện chỉ nhận thẻ động trên điện thoại",
};
// Which kind of card was scanned (docs/card-format.md §8), and the prompt for a printed card at a live_preferred event.
const CARD_KIND = { live: "Thẻ động trên điện thoại", printed: "Thẻ in / mã tĩnh" };
const ID_CHECK = "Thẻ in — đối chiếu giấy tờ tùy thân";

const state = {
  device: null, // {token, stationId, eventId, anchor (JWK)}
  anchor: null, // imported anchor key
  bundle: null, // verified event bundle
  localEntries: [], // accepted entries decided by this station: {nonce, member_number, direction, at, synced}
  lastText: null,
  lastSeen: 0,
  resetTimer: null,
  syncing: false,
  audio: null,
};

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
const vnTime = (seconds) => new Date(seconds * 1000).toLocaleTimeString("vi-VN",
  { timeZone: "Asia/Ho_Chi_Minh", hour: "2-digit", minute: "2-digit" });

class NetworkError extends Error {}

async function request(path, options = {}, timeout = REQUEST_TIMEOUT_MS) {
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

function setOnline(online) {
  const pill = $("net");
  pill.dataset.net = online ? "online" : "offline";
  pill.textContent = online ? "Trực tuyến" : "Mất kết nối máy chủ";
}

function warn(message) {
  const box = $("warning");
  box.textContent = message || "";
  box.hidden = !message;
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
  $("setup-message").textContent = "Đang thiết lập trạm…";
  try {
    const response = await request("/v1/devices/provision", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("setup-message").textContent = `Không thiết lập được: ${body.message || response.status}`;
      document.body.dataset.phase = state.device ? "ready" : "setup";
      return false;
    }
    // Trust on first use, over the same origin: pinned here and used for every later bundle.
    const anchorResponse = await request("/.well-known/cardsvc-trust-anchor.json");
    if (!anchorResponse.ok) throw new Error("trust anchor unavailable");
    const anchorJwk = await anchorResponse.json();
    const anchor = await V.importJwk(anchorJwk);
    const device = { token: body.device_token, stationId: body.station_id, eventId: body.event_id,
      anchor: anchorJwk, provisionedAt: Date.now() };
    await store.setValue("device", device);
    await store.deleteValue("bundle");
    await store.clear("entries");
    Object.assign(state, { device, anchor, bundle: null, localEntries: [] });
    setOnline(true);
    $("setup").hidden = true;
    $("setup-message").textContent = "";
    await refreshBundle();
    return true;
  } catch (error) {
    $("setup-message").textContent = `Không thiết lập được (${error.message}). Kiểm tra mạng và thử lại.`;
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
  renderBundle();
  document.body.dataset.phase = "ready";
}

async function refreshBundle() {
  if (!state.device) return;
  try {
    const response = await request(`/v1/events/${state.device.eventId}/bundle`,
      { headers: authHeaders(state.device.token) }, 20000);
    if (response.status === 401 || response.status === 403) {
      warn("Trạm đã bị thu hồi hoặc hết quyền. Hãy thiết lập lại bằng mã QR mới.");
      return;
    }
    if (!response.ok) throw new NetworkError(`HTTP ${response.status}`);
    const token = await response.text();
    await useBundle(token);
    await store.setValue("bundle", token);
    setOnline(true);
    warn("");
  } catch (error) {
    if (error instanceof NetworkError) setOnline(false);
    else warn(`Dữ liệu sự kiện không hợp lệ: ${error.message}`);
  }
}

function renderBundle() {
  const { bundle } = state;
  if (!bundle) return;
  $("event-title").textContent = bundle.event.title;
  $("station-name").textContent = `${bundle.event.venue} · trạm #${state.device.stationId}`;
  const entered = new Set(allEntries().filter((e) => e.direction === "in").map((e) => e.member_number)).size;
  $("bundle-info").textContent = `Dữ liệu lúc ${vnTime(bundle.issuedAt)} · ${bundle.roster.length} hội viên`
    + ` · đã vào ${entered} · mở ${vnTime(bundle.event.opensAt)}–${vnTime(bundle.event.closesAt)}`;
}

function allEntries() {
  const fromBundle = state.bundle ? state.bundle.checkins : [];
  return [...fromBundle, ...state.localEntries];
}

// --- results -----------------------------------------------------------------------------------------------------

function beep(ok) {
  try {
    state.audio = state.audio || new AudioContext();
    const ctx = state.audio;
    const notes = ok ? [[880, 0, 0.15], [1320, 0.12, 0.18]] : [[220, 0, 0.2], [220, 0.3, 0.2]];
    for (const [frequency, offset, duration] of notes) {
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.type = ok ? "sine" : "square";
      oscillator.frequency.value = frequency;
      const start = ctx.currentTime + offset;
      gain.gain.setValueAtTime(0.25, start);
      gain.gain.exponentialRampToValueAtTime(0.001, start + duration);
      oscillator.connect(gain).connect(ctx.destination);
      oscillator.start(start);
      oscillator.stop(start + duration + 0.02);
    }
    if (navigator.vibrate) navigator.vibrate(ok ? 80 : [90, 60, 90]);
  } catch {
    // No audio device: the colour and the text are the result.
  }
}

const SYNC_TEXT = {
  synced: "Đã ghi nhận trên máy chủ",
  queued: "Chưa đồng bộ – sẽ tự gửi khi có mạng",
  local: "Kiểm tra tại máy",
};

function showResult(result) {
  const box = $("result");
  box.dataset.state = result.ok ? "ok" : "error";
  box.dataset.reason = result.reason || "";
  box.dataset.sync = result.sync;
  box.dataset.nonce = result.nonce || "";
  box.dataset.live = result.live ? "1" : "0";
  box.dataset.idCheck = result.idCheck ? "1" : "0";
  $("result-title").textContent = result.ok ? LABELS[result.direction === "out" ? "ok_out" : "ok_in"]
    : LABELS[result.reason] || result.reason;
  $("result-name").textContent = result.name || "";
  const parts = [];
  if (result.memberNumber) parts.push(`Số hội viên ${result.memberNumber}`);
  if (result.chapter) parts.push(result.chapter);
  if (result.first) parts.push(`Vào lúc ${vnTime(result.first)}`);
  if (!result.ok && result.reason) parts.push(`mã lý do: ${result.reason}`);
  if (result.ok) parts.push(result.idCheck ? ID_CHECK : CARD_KIND[result.live ? "live" : "printed"]);
  $("result-detail").textContent = parts.join(" · ");
  $("result-sync").textContent = SYNC_TEXT[result.sync] || "";
  beep(result.ok);
  addHistory(result);
  clearTimeout(state.resetTimer);
  state.resetTimer = setTimeout(() => {
    box.dataset.state = "ready";
    box.dataset.reason = "";
    box.dataset.sync = "";
    $("result-title").textContent = "Sẵn sàng quét";
    for (const id of ["result-name", "result-detail", "result-sync"]) $(id).textContent = "";
  }, SHOW_RESULT_MS);
}

function addHistory(result) {
  const item = document.createElement("li");
  item.dataset.state = result.ok ? "ok" : "error";
  item.dataset.reason = result.reason || "";
  item.dataset.sync = result.sync;
  item.dataset.nonce = result.nonce || "";
  const who = document.createElement("div");
  who.textContent = `${result.name || "(không rõ)"} – ${result.ok ? "hợp lệ" : LABELS[result.reason] || result.reason}`;
  const when = document.createElement("div");
  when.className = "when";
  when.textContent = vnTime(nowSeconds());
  const sync = document.createElement("div");
  sync.className = "sync";
  sync.textContent = SYNC_TEXT[result.sync] || "";
  item.append(who, when, sync);
  const list = $("recent");
  list.prepend(item);
  while (list.children.length > HISTORY_SIZE) list.lastElementChild.remove();
}

function markHistorySynced(nonce, answer) {
  for (const item of document.querySelectorAll(`#recent li[data-nonce="${CSS.escape(nonce)}"]`)) {
    item.dataset.sync = "synced";
    const note = answer.result === "ok" || answer.reason === item.dataset.reason ? ""
      : ` (máy chủ: ${LABELS[answer.reason] || answer.reason})`;
    item.querySelector(".sync").textContent = SYNC_TEXT.synced + note;
  }
  const box = $("result");
  if (box.dataset.nonce === nonce && box.dataset.sync === "queued") {
    box.dataset.sync = "synced";
    $("result-sync").textContent = SYNC_TEXT.synced;
  }
}

// --- scans -------------------------------------------------------------------------------------------------------

/** POST one scan. Returns {kind: "answer", body} | {kind: "refused", status, body} | {kind: "auth"}; throws
 * NetworkError when the server cannot be reached or fails (the scan stays queued). A queued scan (`offline`) also
 * carries the verdict this phone showed, so that the server can report a member it let in but the server refuses
 * (the offline conflicts report). */
async function postCheckin(item, offline = false) {
  const scan = { source: item.source, client_nonce: item.nonce, payload: item.payload, scanned_at: item.scannedAt };
  if (offline && item.local) {
    scan.offline = true;
    scan.local_result = item.local.ok ? "ok" : "error";
    if (!item.local.ok && item.local.reason) scan.local_reason = String(item.local.reason).slice(0, 32);
  }
  const response = await request(`/v1/events/${item.eventId}/checkins`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders(item.token) },
    body: JSON.stringify(scan),
  });
  if (response.status === 401 || response.status === 403) return { kind: "auth" };
  if (response.status >= 500 || response.status === 429) throw new NetworkError(`HTTP ${response.status}`);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return { kind: "refused", status: response.status, body };
  return { kind: "answer", body };
}

async function recordEntry(nonce, memberNumber, direction, at, synced) {
  const entry = { nonce, member_number: memberNumber, direction, at, synced };
  state.localEntries.push(entry);
  await store.put("entries", entry);
}

async function handleScan(text, source) {
  const now = Date.now();
  // A live code changes every 30 s while its card stays in view: the same card is the same scan.
  const key = scanKey(text);
  if (key === state.lastText && now - state.lastSeen < SAME_CODE_QUIET_MS) {
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
    showResult({ ok: false, reason: "not_provisioned", sync: "local" });
    return;
  }
  if (!state.bundle) {
    showResult({ ok: false, reason: "no_bundle", sync: "local" });
    return;
  }
  const at = nowSeconds();
  const verdict = await V.verify(text, state.bundle.trust, state.bundle.statusLists, at);
  const local = V.eventDecision(state.bundle, verdict, allEntries(), at);
  const item = { nonce: crypto.randomUUID(), eventId: state.device.eventId, token: state.device.token, source,
    payload: text, scannedAt: new Date(at * 1000).toISOString(), queuedAt: Date.now(),
    local: { ok: local.ok, reason: local.reason, direction: local.direction,
      member_number: local.member ? local.member.member_number : null } };
  const shown = {
    nonce: item.nonce,
    name: local.member ? local.member.name : verdict.claims ? verdict.claims.display_name : "",
    memberNumber: local.member ? local.member.member_number : verdict.claims ? verdict.claims.member_number : "",
    chapter: local.member ? local.member.chapter_name : verdict.claims ? verdict.claims.chapter_code : "",
  };
  let outcome = null;
  try {
    outcome = await postCheckin(item);
    setOnline(true);
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    setOnline(false);
  }
  if (outcome && outcome.kind === "answer") {
    const answer = outcome.body;
    const ok = answer.result === "ok";
    if (ok) await recordEntry(item.nonce, answer.member.member_number, answer.direction, at, true);
    const member = answer.member;
    showResult({ ...shown, ok, reason: answer.reason, direction: answer.direction, sync: "synced",
      live: answer.live === true, idCheck: answer.id_check === true,
      name: member ? member.full_name : shown.name, memberNumber: member ? member.member_number : shown.memberNumber,
      chapter: member ? member.chapter.name : shown.chapter,
      first: answer.first_checkin ? Date.parse(answer.first_checkin.at) / 1000 : null });
    renderBundle();
    return;
  }
  if (outcome && outcome.kind === "auth") warn("Trạm đã bị thu hồi hoặc hết quyền. Hãy thiết lập lại bằng mã QR mới.");
  if (!outcome || outcome.kind === "auth") {
    // The server cannot answer now: the local verdict stands and the scan waits in the queue with its nonce.
    await store.put("queue", item);
    if (local.ok) await recordEntry(item.nonce, local.member.member_number, local.direction, at, false);
  }
  showResult({ ...shown, ok: local.ok, reason: local.reason, direction: local.direction,
    sync: outcome ? "local" : "queued", first: local.first ? local.first.at : null, live: verdict.live,
    idCheck: local.ok && needsIdCheck(state.bundle.event.livePolicy, verdict.live) });
  renderQueue();
  renderBundle();
}

async function renderQueue() {
  const count = (await store.all("queue")).length;
  const pill = $("queue");
  pill.dataset.count = String(count);
  pill.textContent = `Chờ gửi: ${count}`;
}

async function syncQueue() {
  if (state.syncing) return;
  state.syncing = true;
  let sent = 0;
  try {
    const items = (await store.all("queue")).sort((a, b) => a.queuedAt - b.queuedAt);
    for (const item of items) {
      let outcome;
      try {
        outcome = await postCheckin(item, true);
      } catch {
        setOnline(false);
        break;
      }
      setOnline(true);
      if (outcome.kind === "auth") {
        warn("Trạm đã bị thu hồi: các lượt quét chưa gửi được giữ lại trên máy.");
        break;
      }
      // Answered (or refused for good, e.g. a malformed request): the server has the final word.
      await store.remove("queue", item.nonce);
      sent += 1;
      const answer = outcome.kind === "answer" ? outcome.body : { result: "error", reason: outcome.body.code };
      const entry = state.localEntries.find((e) => e.nonce === item.nonce);
      if (entry && answer.result === "ok") {
        entry.synced = true;
        await store.put("entries", entry);
      } else if (entry) {
        state.localEntries = state.localEntries.filter((e) => e !== entry);
        await store.remove("entries", item.nonce);
      }
      markHistorySynced(item.nonce, answer);
    }
  } finally {
    state.syncing = false;
    await renderQueue();
  }
  if (sent) await refreshBundle();
}

// --- camera ------------------------------------------------------------------------------------------------------

async function makeDecoder(video) {
  if ("BarcodeDetector" in window) {
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      if (formats.includes("qr_code")) {
        const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        return { name: "native", decode: async () => {
          const codes = await detector.detect(video);
          return codes.length ? codes[0].rawValue : null;
        } };
      }
    } catch {
      // Fall back to the bundled decoder.
    }
  }
  const worker = new Worker("/checkin/decoder-worker.js");
  const pending = new Map();
  let sequence = 0;
  worker.onmessage = (event) => {
    const resolve = pending.get(event.data.id);
    pending.delete(event.data.id);
    if (resolve) resolve(event.data.text);
  };
  const canvas = $("frame");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return { name: "jsqr", decode: () => {
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return null;
    const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    sequence += 1;
    const id = sequence;
    return new Promise((resolve) => {
      pending.set(id, resolve);
      worker.postMessage({ id, width: image.width, height: image.height, buffer: image.data.buffer },
        [image.data.buffer]);
    });
  } };
}

async function startCamera() {
  const video = $("video");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $("camera-message").textContent = "Trình duyệt không cho dùng camera (cần https).";
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 }, height: { ideal: 720 } } });
  } catch (error) {
    $("camera-message").textContent = `Không mở được camera (${error.name}). Dùng ô tìm kiếm bên dưới.`;
    return;
  }
  video.srcObject = stream;
  await video.play().catch(() => {});
  const decoder = await makeDecoder(video);
  document.body.dataset.decoder = decoder.name;
  document.body.dataset.camera = "on";
  for (;;) {
    let text = null;
    if (video.readyState >= 2 && !document.hidden) {
      try {
        text = await decoder.decode();
      } catch {
        text = null;
      }
    }
    if (text) {
      try {
        await handleScan(text, "qr_camera");
      } catch (error) {
        warn(`Lỗi khi xử lý lượt quét: ${error.message}`);
      }
    }
    await sleep(SCAN_INTERVAL_MS);
  }
}

// --- manual search -----------------------------------------------------------------------------------------------

function renderMatches() {
  const list = $("matches");
  list.replaceChildren();
  if (!state.bundle) return;
  const entries = allEntries();
  for (const entry of V.searchRoster(state.bundle.roster, $("search").value)) {
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
      + (mine.length ? `đã vào lúc ${vnTime(mine[0].at)}` : "chưa điểm danh");
    item.append(who, meta);
    list.append(item);
  }
}

// --- start -------------------------------------------------------------------------------------------------------

async function main() {
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/checkin/sw.js", { scope: "/checkin" }).catch(() => {});
  }
  document.addEventListener("pointerdown", () => { if (state.audio) state.audio.resume(); });
  $("search").addEventListener("input", renderMatches);
  const code = setupCodeFromHash();
  state.device = (await store.getValue("device")) || null;
  state.localEntries = await store.all("entries");
  if (state.device) {
    try {
      state.anchor = await V.importJwk(state.device.anchor);
      const stored = await store.getValue("bundle");
      if (stored) await useBundle(stored);
    } catch (error) {
      warn(`Dữ liệu đã lưu không dùng được: ${error.message}`);
    }
  }
  if (code) await provision(code);
  else if (state.device) await refreshBundle();
  if (!state.device) {
    document.body.dataset.phase = "setup";
    $("setup").hidden = false;
  }
  await renderQueue();
  setInterval(syncQueue, SYNC_INTERVAL_MS);
  setInterval(refreshBundle, BUNDLE_REFRESH_MS);
  window.addEventListener("online", syncQueue);
  syncQueue();
  startCamera();
}

main();
