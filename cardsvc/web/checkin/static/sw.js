// Service worker of the check-in app (served at /checkin/sw.js with scope /checkin).
// It caches the app shell so the page opens with no network; API calls (/v1/…) are never cached or intercepted:
// the event bundle lives in IndexedDB and scans are queued by the page itself.
// The server writes a hash of every shell file (the decoder worker and jsQR included) into VERSION, so a new
// version of any of them is a new service worker with a new cache, and the old cache is dropped on activation.
const VERSION = "@SHELL_VERSION@";
const CACHE = `checkin-shell-${VERSION}`;
const SHELL = [
  "/checkin",
  "/checkin/manifest.webmanifest",
  "/static/checkin/app.js",
  "/static/checkin/verify.js",
  "/static/checkin/live.js",
  "/static/checkin/store.js",
  "/static/checkin/text.js",
  "/static/checkin/decoder.js",
  "/static/checkin/style.css",
  "/checkin/decoder-worker.js",
  "/static/checkin/vendor/jsQR.js",
  "/static/checkin/icon-192.png",
  "/static/checkin/icon-512.png",
];
const NETWORK_TIMEOUT_MS = 3000;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("checkin-shell-") && k !== CACHE)
        .map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && (url.pathname === "/checkin"
    || url.pathname === "/checkin/manifest.webmanifest" || url.pathname === "/checkin/decoder-worker.js"
    || url.pathname.startsWith("/static/checkin/"));
}

async function fromNetwork(request, key) {
  const cache = await caches.open(CACHE);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), NETWORK_TIMEOUT_MS);
  try {
    const response = await fetch(request, { signal: controller.signal, cache: "no-cache" });
    if (response.ok) await cache.put(key, response.clone());
    return response;
  } finally {
    clearTimeout(timer);
  }
}

// Network first (a fresh deploy wins), the cached copy when the server cannot be reached in time.
async function networkFirst(request, key) {
  try {
    return await fromNetwork(request, key);
  } catch {
    const cached = await caches.match(key, { ignoreSearch: true });
    return cached || Response.error();
  }
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || !isShell(url)) return;
  // The page is cached under its path only (the #setup=… fragment never reaches the network anyway).
  const key = url.pathname === "/checkin" ? "/checkin" : url.pathname;
  event.respondWith(networkFirst(request, key));
});
