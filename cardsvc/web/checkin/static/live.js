// Live codes in the browser: the same rules and reason codes as verification/live.py (docs/card-format.md §8).
//
// A live code is [time_step, proof, bound credential] in deterministic CBOR, QR text "8402" + digits. verify() in
// verify.js hands "8402…" texts to verifyLive(): the card key's signature, the phone's proof over the card id and
// the time step, the time step against this verifier's clock, then the card's dates and status as for any card.
// tests/web/test_checkin_js_vectors.py runs tests/vectors/card-v2-live.json through this module.
import {
  ALG_EDDSA, ALG_ES256, CborMap, CredentialError, P256_HALF_ORDER, cardKeyRefusal, cleanScannedText,
  datesAndStatus, deniedVerdict, digitsToBytes, fromHex, hex, isInt, mapGet, parseCredential, verifyRaw,
} from "./verify.js";

export const LIVE_QR_PREFIX = "8402";
// verification.live: a code changes every 30 s; a verifier accepts the steps from 2 before its own to 1 after it.
export const LIVE_STEP_SECONDS = 30;
export const LIVE_STEPS_BEHIND = 2;
export const LIVE_STEPS_AHEAD = 1;
const MAX_LIVE_CODE_BYTES = 583;
const MAX_QR_TEXT = 2048;
const PROOF_CONTEXT = "LiveProof1";
const STEP_HEADS = { 0x18: [1, 24], 0x19: [2, 0x100], 0x1a: [4, 0x10000] };

/** Whether scanned text names a live code (its digits start with 8402), scanner framing or not. */
export function isLiveText(text) {
  if (text.startsWith(LIVE_QR_PREFIX)) return true;
  if (/^[0-9]/.test(text) || [...text].length > MAX_QR_TEXT) return false;
  try { return cleanScannedText(text).startsWith(LIVE_QR_PREFIX); } catch { return false; }
}

/** The live-code bytes of a scanned "8402…" text (verification.live.live_code_from_text). */
export function liveCodeFromText(text) {
  if ([...text].length > MAX_QR_TEXT) throw new CredentialError("malformed", "scanned text too long");
  const digits = /^[0-9]+$/.test(text) ? text : cleanScannedText(text);
  if (!digits.startsWith(LIVE_QR_PREFIX)) throw new CredentialError("malformed", "not a live code");
  return digitsToBytes(digits.slice(LIVE_QR_PREFIX.length));
}

/** The phone's key from a bound credential's cnf: {algorithm, publicRaw} (verification.live.holder_key). */
export function holderKey(cnf) {
  const key = cnf instanceof CborMap && cnf.size === 1 && isInt(cnf.entries[0][0]) ? mapGet(cnf, 1) : undefined;
  if (!(key instanceof CborMap) || !key.entries.every(([label]) => isInt(label))) {
    throw new CredentialError("malformed", "cnf must hold exactly one COSE_Key");
  }
  const [kty, crv, x, y] = [1, -1, -2, -3].map((label) => mapGet(key, label));
  const is = (value, wanted) => typeof value === "number" && value === wanted;
  if (is(kty, 1) && is(crv, 6) && key.size === 3 && x instanceof Uint8Array && x.length === 32) {
    return { algorithm: ALG_EDDSA, publicRaw: x };
  }
  if (is(kty, 2) && is(crv, 1) && key.size === 4 && x instanceof Uint8Array && y instanceof Uint8Array
      && x.length === 32 && y.length === 32) {
    return { algorithm: ALG_ES256, publicRaw: new Uint8Array([4, ...x, ...y]) };
  }
  throw new CredentialError("malformed", "the holder key must be an OKP/Ed25519 or EC2/P-256 COSE_Key");
}

/** Structure of live-code bytes (verification.live.parse_live_code); no signature is checked here. */
export function parseLiveCode(raw) {
  if (!(raw instanceof Uint8Array) || raw.length < 2 || raw.length > MAX_LIVE_CODE_BYTES || raw[0] !== 0x83) {
    throw new CredentialError("malformed", "a live code is a CBOR array of three items");
  }
  const head = raw[1];
  let timeStep;
  let at;
  if (head < 0x18) {
    [timeStep, at] = [head, 2];
  } else if (STEP_HEADS[head]) {
    const [size, least] = STEP_HEADS[head];
    if (raw.length < 2 + size) throw new CredentialError("malformed", "truncated time step");
    timeStep = 0;
    for (let i = 0; i < size; i += 1) timeStep = timeStep * 256 + raw[2 + i];
    at = 2 + size;
    if (timeStep < least) throw new CredentialError("malformed", "time step not in its shortest form");
  } else {
    throw new CredentialError("malformed", "time step must be an unsigned integer below 2**32");
  }
  if (raw[at] !== 0x58 || raw[at + 1] !== 0x40 || raw.length < at + 66) {
    throw new CredentialError("malformed", "proof must be 64 raw bytes");
  }
  const proof = raw.slice(at + 2, at + 66);
  const credential = parseCredential(raw.slice(at + 66), { bound: true });
  return { raw, timeStep, proof, credential, holder: holderKey(credential.cnf) };
}

function uint(value) {
  if (value < 24) return [value];
  if (value < 0x100) return [0x18, value];
  if (value < 0x10000) return [0x19, value >> 8, value & 0xff];
  return [0x1a, (value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

/** What the phone signs: ["LiveProof1", card_id, time_step, challenge] in deterministic CBOR. */
export function proofInput(cardId, timeStep, challenge = new Uint8Array(0)) {
  return new Uint8Array([0x84, 0x40 | PROOF_CONTEXT.length, ...new TextEncoder().encode(PROOF_CONTEXT),
    0x40 | cardId.length, ...cardId, ...uint(timeStep), 0x40 | challenge.length, ...challenge]);
}

/** [time_step, proof, credential] in deterministic CBOR (verification.live.assemble_live_code). */
export function assembleLiveCode(timeStep, proof, credential) {
  return new Uint8Array([0x83, ...uint(timeStep), 0x58, 0x40, ...proof, ...credential]);
}

/** Whether the phone's proof verifies with the key of the (already verified) bound credential. */
export async function verifyHolderProof(live) {
  const { algorithm, publicRaw } = live.holder;
  const data = proofInput(fromHex(live.credential.claims.card_id), live.timeStep);
  if (algorithm === ALG_ES256 && BigInt(`0x${hex(live.proof.subarray(32))}`) > P256_HALF_ORDER) return false;
  let key;
  try {
    const params = algorithm === ALG_EDDSA ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: "P-256" };
    key = await crypto.subtle.importKey("raw", publicRaw, params, false, ["verify"]);
  } catch {
    return false; // not a point of its curve
  }
  return verifyRaw(algorithm, key, live.proof, data);
}

/** The time step of a moment in seconds: floor(seconds / 30). */
export function timeStepAt(seconds) { return Math.floor(seconds / LIVE_STEP_SECONDS); }

/** Whether a time step lies in the window a verifier at ``now`` (seconds) accepts. */
export function isFresh(timeStep, now) {
  const current = timeStepAt(now);
  return current - LIVE_STEPS_BEHIND <= timeStep && timeStep <= current + LIVE_STEPS_AHEAD;
}

/** verification.verify.verify for a live code (docs/card-format.md §8.4). */
export async function verifyLive(scanned, trust, status, now, { onMissingStatus = "reject", digest }) {
  let live;
  try {
    live = parseLiveCode(liveCodeFromText(scanned));
  } catch (error) {
    return deniedVerdict(error instanceof CredentialError ? error.reason : "malformed", digest, { live: true });
  }
  const { kid, claims } = live.credential;
  const refused = await cardKeyRefusal(live.credential, trust);
  if (refused !== null) return deniedVerdict(refused, digest, { kid, live: true });
  if (!(await verifyHolderProof(live))) {
    return deniedVerdict("holder_proof_invalid", digest, { kid, claims, live: true });
  }
  if (!isFresh(live.timeStep, now)) return deniedVerdict("stale_live_code", digest, { kid, claims, live: true });
  return datesAndStatus(claims, kid, digest, status, now, { onMissingStatus, live: true });
}

/** A key for "the same card still in front of the camera": a live code changes every step, its card does not. */
export function scanKey(text) {
  if (!isLiveText(text)) return text;
  try { return `live:${parseLiveCode(liveCodeFromText(text)).credential.claims.card_id}`; } catch { return text; }
}
