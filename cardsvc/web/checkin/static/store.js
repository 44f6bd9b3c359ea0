// The station's local storage (IndexedDB): device token, pinned trust anchor, event bundle, local entries, queue.
const DB_NAME = "cardsvc-checkin";
const VERSION = 1;
let opening = null;

function open() {
  if (opening) return opening;
  opening = new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("kv");
      // Scans waiting for the server, oldest first (sent again with the same nonce until the server answers).
      db.createObjectStore("queue", { keyPath: "nonce" });
      // Accepted entries this station decided (online or offline): the "already checked in" rule between syncs.
      db.createObjectStore("entries", { keyPath: "nonce" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opening;
}

async function run(store, mode, action) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const request = action(tx.objectStore(store));
    tx.oncomplete = () => resolve(request ? request.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export const getValue = (key) => run("kv", "readonly", (s) => s.get(key));
export const setValue = (key, value) => run("kv", "readwrite", (s) => s.put(value, key));
export const deleteValue = (key) => run("kv", "readwrite", (s) => s.delete(key));
export const all = (store) => run(store, "readonly", (s) => s.getAll());
export const put = (store, value) => run(store, "readwrite", (s) => s.put(value));
export const remove = (store, key) => run(store, "readwrite", (s) => s.delete(key));
export const clear = (store) => run(store, "readwrite", (s) => s.clear());
