// QR decoding off the main thread with the vendored jsQR (static/vendor/README.md). Served at
// /checkin/decoder-worker.js (a worker takes the CSP of its own script response).
/* global jsQR */
importScripts("/static/checkin/vendor/jsQR.js");

self.onmessage = (event) => {
  const { id, width, height, buffer } = event.data;
  let text = null;
  try {
    const code = jsQR(new Uint8ClampedArray(buffer), width, height, { inversionAttempts: "attemptBoth" });
    text = code ? code.data : null;
  } catch {
    text = null;
  }
  self.postMessage({ id, text });
};
