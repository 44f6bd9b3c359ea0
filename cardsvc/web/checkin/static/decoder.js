// QR decoding for the camera loop and for photos: the browser's BarcodeDetector when it reads QR codes (Android
// Chrome with Play Services, macOS), otherwise jsQR (static/vendor) in a worker, off the main thread.
const WORKER_URL = "/checkin/decoder-worker.js";

function sizeOf(source) {
  return source.videoWidth !== undefined ? [source.videoWidth, source.videoHeight] : [source.width, source.height];
}

async function nativeDecoder() {
  if (!("BarcodeDetector" in window)) return null;
  try {
    const formats = await window.BarcodeDetector.getSupportedFormats();
    if (!formats.includes("qr_code")) return null;
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    return { name: "native", decode: async (source) => {
      const codes = await detector.detect(source);
      return codes.length ? codes[0].rawValue : null;
    } };
  } catch {
    return null;
  }
}

function workerDecoder(canvas) {
  const worker = new Worker(WORKER_URL);
  const pending = new Map();
  let sequence = 0;
  worker.onmessage = (event) => {
    const resolve = pending.get(event.data.id);
    pending.delete(event.data.id);
    if (resolve) resolve(event.data.text);
  };
  // A worker that cannot start (its script missing offline) must not leave the camera loop waiting forever.
  worker.onerror = () => {
    for (const resolve of pending.values()) resolve(null);
    pending.clear();
  };
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return { name: "jsqr", decode: (source, maxSide) => {
    const [width, height] = sizeOf(source);
    if (!width || !height) return null;
    const scale = Math.min(1, maxSide / Math.max(width, height));
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
    context.drawImage(source, 0, 0, canvas.width, canvas.height);
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

/** A decoder: `{name, decode(source, maxSide)}` where source is a playing video or an ImageBitmap; decode resolves
 * to the QR text or null. jsQR sees the source scaled down to `maxSide` pixels on its longer side. */
export async function makeDecoder(canvas) {
  return (await nativeDecoder()) || workerDecoder(canvas);
}
