/* The member's card page: show the saved card at once, refresh it when online, and say clearly when it changed.
   No framework on purpose: the page must load on cheap phones over a weak signal. */
(function () {
  "use strict";

  var T = {
    vi: {
      union: "Hội LHPN Việt Nam", toggle: "English", member_number: "Số hội viên", chapter: "Đơn vị",
      validity: "Hiệu lực", status: "Trạng thái", qr_alt: "Mã QR thẻ hội viên",
      brightness: "Tăng độ sáng màn hình khi đưa mã QR cho người quét.",
      active: "Còn hiệu lực", suspended: "Tạm ngưng", expired: "Hết hạn", revoked: "Đã thu hồi", no_card: "Chưa có thẻ",
      banner_suspended: "Thẻ đang tạm ngưng. Liên hệ chi hội.",
      banner_expired: "Thẻ đã hết hạn. Liên hệ chi hội để gia hạn.",
      banner_expired_local: "Thẻ có thể đã hết hạn (theo ngày trên điện thoại).",
      banner_revoked: "Thẻ đã bị thu hồi. Liên hệ chi hội nếu cần.",
      banner_no_card: "Chị chưa được cấp thẻ. Chi hội sẽ báo khi thẻ sẵn sàng.",
      reissued: "Đã cấp thẻ mới (lần {v}). Mã QR cũ không còn dùng được.",
      offline: "Không có mạng: đang hiện thẻ đã lưu lúc {t}.",
      updated: "Cập nhật lúc {t}.",
      gone: "Đường link này không còn hiệu lực. Liên hệ chi hội để nhận đường link mới.",
      apple_wallet: "Thêm vào Apple Wallet", google_wallet: "Lưu vào Google Wallet"
    },
    en: {
      union: "Vietnam Women's Union", toggle: "Tiếng Việt", member_number: "Member number", chapter: "Chapter",
      validity: "Valid", status: "Status", qr_alt: "Member card QR code",
      brightness: "Turn the screen brightness up when showing the QR code to the scanner.",
      active: "Valid", suspended: "Suspended", expired: "Expired", revoked: "Revoked", no_card: "No card yet",
      banner_suspended: "This card is suspended. Contact your chapter.",
      banner_expired: "This card has expired. Contact your chapter to renew it.",
      banner_expired_local: "This card may have expired (by the phone's date).",
      banner_revoked: "This card has been revoked. Contact your chapter if needed.",
      banner_no_card: "You have no card yet. Your chapter will tell you when it is ready.",
      reissued: "A new card was issued (version {v}). The old QR code no longer works.",
      offline: "No connection: showing the card saved at {t}.",
      updated: "Updated at {t}.",
      gone: "This link is no longer valid. Ask your chapter for a new link.",
      apple_wallet: "Add to Apple Wallet", google_wallet: "Save to Google Wallet"
    }
  };

  var page = location.pathname.replace(/\/+$/, "");
  var storeKey = "card:" + page;
  var lang = read("lang") === "en" ? "en" : "vi";
  var shown = null;       // the card data on screen
  var notice = null;      // {key, v} of the notice on screen
  var offlineSince = false;

  function read(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  function write(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* private mode: no saving */ } }
  function $(id) { return document.getElementById(id); }
  function t(key, params) {
    var text = T[lang][key] || key;
    Object.keys(params || {}).forEach(function (name) { text = text.replace("{" + name + "}", params[name]); });
    return text;
  }
  function dmy(iso) { return iso ? iso.slice(8, 10) + "/" + iso.slice(5, 7) + "/" + iso.slice(0, 4) : ""; }
  function clock(iso) {
    var d = new Date(iso);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return two(d.getHours()) + ":" + two(d.getMinutes()) + " " + two(d.getDate()) + "/" + two(d.getMonth() + 1);
  }
  function localToday() {
    var d = new Date();
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate());
  }
  function newer(a, b) {
    if (!a) { return b; }
    if (!b) { return a; }
    return Date.parse(a.checked_at) >= Date.parse(b.checked_at) ? a : b;
  }

  function render() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t(el.getAttribute("data-t")); });
    var button = $("lang");
    if (button) { button.textContent = t("toggle"); button.lang = lang === "vi" ? "en" : "vi"; }
    var root = $("card");
    if (!shown || !root) { return; }
    var state = shown.state;
    var bannerKey = state === "active" ? null : "banner_" + state;
    var warn = state === "suspended";
    // The phone's clock may be wrong (a common complaint), so a local expiry only warns and keeps the QR.
    if (state === "active" && shown.expires_on && localToday() > shown.expires_on) {
      bannerKey = "banner_expired_local";
      warn = true;
    }
    root.setAttribute("data-state", state);
    $("name").textContent = shown.full_name;
    $("member-number").textContent = shown.member_number;
    $("chapter").textContent = shown.chapter_name;
    $("validity").textContent = shown.issued_on ? dmy(shown.issued_on) + " – " + dmy(shown.expires_on) : "";
    $("status").textContent = t(state);
    var banner = $("banner");
    banner.hidden = !bannerKey;
    banner.textContent = bannerKey ? t(bannerKey) : "";
    banner.className = warn ? "banner warn" : "banner";
    var box = $("qr-box");
    var img = $("qr");
    if (shown.qr_svg) {
      var src = "data:image/svg+xml;base64," + btoa(shown.qr_svg);
      if (img.getAttribute("src") !== src) { img.setAttribute("src", src); }
      img.setAttribute("data-card-id", shown.card_id);
      img.alt = t("qr_alt");
      box.hidden = false;
    } else {
      img.removeAttribute("src");
      img.removeAttribute("data-card-id");
      box.hidden = true;
    }
    var note = $("notice");
    note.hidden = !notice;
    note.textContent = notice ? t(notice.key, {v: notice.v}) : "";
    $("sync").textContent = t(offlineSince ? "offline" : "updated", {t: clock(shown.checked_at)});
  }

  function show(data) {
    if (shown && data.card_id && shown.card_id && data.card_id !== shown.card_id && data.version > shown.version) {
      notice = {key: "reissued", v: data.version};
    }
    shown = data;
    write(storeKey, JSON.stringify(data));
    render();
  }

  function forget() {
    // The officer revoked this link (e.g. a lost phone): remove the card from this phone.
    try { localStorage.removeItem(storeKey); } catch (e) { /* nothing saved */ }
    if (window.caches) {
      caches.keys().then(function (names) {
        names.forEach(function (name) { if (name.indexOf(page) !== -1) { caches.delete(name); } });
      });
    }
    if (navigator.serviceWorker) {
      navigator.serviceWorker.getRegistrations().then(function (regs) {
        regs.forEach(function (reg) { if (new URL(reg.scope).pathname === page) { reg.unregister(); } });
      });
    }
  }

  function gone() {
    forget();
    var root = $("card");
    if (root && root.getAttribute("data-state") !== "gone") {
      root.setAttribute("data-state", "gone");
      root.textContent = "";
      var h = document.createElement("h1");
      h.textContent = t("gone");
      root.appendChild(h);
    }
  }

  function refresh() {
    var ctrl = window.AbortController ? new AbortController() : null;
    var timer = ctrl ? setTimeout(function () { ctrl.abort(); }, 15000) : null;
    fetch(page + "/card.json", {cache: "no-store", credentials: "omit", signal: ctrl ? ctrl.signal : undefined})
      .then(function (response) {
        if (response.status === 404) { gone(); return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) { if (data) { offlineSince = false; show(data); } })
      .catch(function () { offlineSince = true; render(); })
      .then(function () { if (timer) { clearTimeout(timer); } });
  }

  function start() {
    var root = $("card");
    if (root && root.getAttribute("data-state") === "gone") { forget(); return; }
    var embedded = null;
    var saved = null;
    try { embedded = JSON.parse($("card-data").textContent); } catch (e) { embedded = null; }
    try { saved = JSON.parse(read(storeKey)); } catch (e) { saved = null; }
    shown = saved;
    var first = newer(embedded, saved);
    if (first) { show(first); }
    $("lang").addEventListener("click", function () {
      lang = lang === "vi" ? "en" : "vi";
      write("lang", lang);
      render();
    });
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register(page + "/sw.js", {scope: page}).catch(function () { /* works without */ });
    }
    if ("wakeLock" in navigator) {
      navigator.wakeLock.request("screen").catch(function () { /* optional */ });
    }
    window.addEventListener("online", refresh);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { refresh(); } });
    refresh();
  }

  start();
}());
