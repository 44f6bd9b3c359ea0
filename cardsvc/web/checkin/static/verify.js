// The door station's verifier, in the browser: the same rules and reason codes as verification/ (Python).
//
// docs/card-format.md is the normative text. verification/verify.py is the reference: every check below is made in
// the same order, so a card gets the same reason code here as on the server. tests/web/test_checkin_js_vectors.py
// runs this module in Chromium against tests/vectors/card-v1.json and against the Python verifier.
//
// Nothing here touches the network or storage: it takes bytes, tokens and a pinned anchor and returns verdicts.
// Live codes (QR text "8402…", docs/card-format.md §8) are parsed and checked in live.js, which verify() calls.
import { isLiveText, verifyLive } from "./live.js";

export const REASONS = Object.freeze([
  "malformed", "unsupported_version", "unknown_key", "bad_signature", "not_yet_valid", "expired", "revoked",
  "suspended", "superseded", "key_retired", "holder_proof_invalid", "stale_live_code",
]);

export const QR_PREFIX = "8401";
// verification.entry.LIVE_POLICIES: the event's choice of cards (docs/card-format.md §8.6).
export const LIVE_POLICIES = Object.freeze(["any", "live_preferred", "live_required"]);
export const MAX_CREDENTIAL_BYTES = 512;
export const MAX_QR_TEXT = 2048;
export const ALG_EDDSA = -8;
export const ALG_ES256 = -7;
export const ALGORITHM_NAMES = Object.freeze({ [-8]: "EdDSA", [-7]: "ES256" });
// Seconds a verifier's clock may be off, at both validity edges and for a signed document's iat
// (verification.format.CLOCK_SKEW_SECONDS).
export const CLOCK_SKEW = 600;
export const VIETNAM_OFFSET = 7 * 3600;
export const TRUST_BUNDLE_TYP = "cardsvc-trust+jwt";
export const STATUS_LIST_TYP = "statuslist+jwt";
export const EVENT_BUNDLE_TYP = "cardsvc-event+jwt";
export const MAX_LIST_BYTES = (2 ** 24) * 2 / 8; // verification.status.MAX_LIST_BYTES
const MAX_STATUS_TOKEN_CHARS = 8_000_000;
const MAX_TRUST_TOKEN_CHARS = 1_000_000;
const MAX_BUNDLE_CHARS = 64_000_000;
const PRIVATE_CLAIM = -65537;
const DAY = 86400;
// The limits of docs/card-format.md §6.2 (verification/format.py).
const MAX_MEMBER_NUMBER = 10 ** 10 - 1;
const MAX_NAME_BYTES = 100;
const UINT32_LIMIT = 2 ** 32;
// day_start(date(9999, 12, 31)): the latest exp a date can represent with a day to spare.
const LAST_NUMERIC_DATE = Date.UTC(9999, 11, 31) / 1000 - VIETNAM_OFFSET;
const CHAPTER_CODE = /^[A-Z0-9][A-Z0-9._-]{0,31}$/;
// P-256's order n: ES256 signatures must be low-S, s ≤ (n - 1) / 2 (verification.crypto.P256_HALF_ORDER).
export const P256_HALF_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n / 2n;

// Code points a name must not hold: docs/card-format.md §6.3, the same ranges as
// verification.format.FORBIDDEN_TEXT_RANGES (tests/web/test_checkin_js_vectors.py compares every code point).
export const FORBIDDEN_TEXT_RANGES = Object.freeze([
  [0x0000, 0x001F], [0x007F, 0x009F], [0x00AD, 0x00AD], [0x034F, 0x034F], [0x0600, 0x0605], [0x061C, 0x061C],
  [0x06DD, 0x06DD], [0x070F, 0x070F], [0x0890, 0x0891], [0x08E2, 0x08E2], [0x115F, 0x1160], [0x17B4, 0x17B5],
  [0x180B, 0x180F], [0x200B, 0x200F], [0x2028, 0x202E], [0x2060, 0x206F], [0x3164, 0x3164], [0xD800, 0xF8FF],
  [0xFDD0, 0xFDEF], [0xFE00, 0xFE0F], [0xFEFF, 0xFEFF], [0xFFA0, 0xFFA0], [0xFFF0, 0xFFFB], [0xFFFE, 0xFFFF],
  [0x110BD, 0x110BD], [0x110CD, 0x110CD], [0x13430, 0x1343F], [0x1BCA0, 0x1BCA3], [0x1D173, 0x1D17A],
  ...Array.from({ length: 13 }, (_, i) => [(i + 1) * 0x10000 + 0xFFFE, (i + 1) * 0x10000 + 0xFFFF]),
  [0xE0000, 0xE0FFF], [0xEFFFE, 0x10FFFF],
]);
const FORBIDDEN_TEXT = new RegExp(
  `[${FORBIDDEN_TEXT_RANGES.map(([low, high]) => `\\u{${low.toString(16)}}-\\u{${high.toString(16)}}`).join("")}]`,
  "u",
);

export class CredentialError extends Error {
  constructor(reason, message) { super(message); this.reason = reason; }
}

export class TrustError extends Error {
  constructor(message) { super(message); this.reason = "untrusted"; }
}

// --- QR text ----------------------------------------------------------------------------------------------------

const DIGITS_FOR_BYTES = { 1: 3, 2: 5, 3: 8, 4: 10, 5: 13, 6: 15, 7: 17 };
const BYTES_FOR_DIGITS = Object.fromEntries(Object.entries(DIGITS_FOR_BYTES).map(([b, d]) => [d, Number(b)]));
const ASCII_DIGITS = /^[0-9]+$/;

// docs/card-format.md §2 (verification.format._SCANNED_TEXT): leading whitespace and byte order marks, an AIM
// symbology identifier (]Q1), one ECI escape (\000026), the digits, trailing whitespace; nothing between the digits.
const SCANNED_TEXT = /^[\t\n\r \uFEFF]*(?:\][A-Za-z][0-9A-Za-z])?(?:\\[0-9]{6})?([0-9]+)[\t\n\r ]*$/;

/** The digits of a scanned QR text without the scanner's framing (verification.format.clean_scanned_text). */
export function cleanScannedText(text) {
  const found = SCANNED_TEXT.exec(text);
  if (found === null) {
    throw new CredentialError("malformed", "scanned text is not a run of digits with scanner framing around it");
  }
  return found[1];
}

export function bytesToDigits(data) {
  let out = "";
  const full = data.length - (data.length % 7);
  for (let i = 0; i < data.length; i += 7) {
    const group = data.subarray(i, Math.min(i + 7, data.length));
    let value = 0n;
    for (const byte of group) value = (value << 8n) | BigInt(byte);
    out += value.toString().padStart(i < full ? 17 : DIGITS_FOR_BYTES[group.length], "0");
  }
  return out;
}

export function digitsToBytes(digits) {
  if (digits && !ASCII_DIGITS.test(digits)) throw new CredentialError("malformed", "digits must be 0-9 only");
  const full = Math.floor(digits.length / 17);
  const rest = digits.length % 17;
  if (rest && !(rest in BYTES_FOR_DIGITS)) throw new CredentialError("malformed", "digit count does not match");
  const out = [];
  const push = (text, size) => {
    let value = BigInt(text);
    if (value >= (1n << BigInt(8 * size))) throw new CredentialError("malformed", "digit group out of range");
    const group = new Array(size);
    for (let k = size - 1; k >= 0; k -= 1) { group[k] = Number(value & 0xffn); value >>= 8n; }
    out.push(...group);
  };
  for (let i = 0; i < full; i += 1) push(digits.slice(i * 17, i * 17 + 17), 7);
  if (rest) push(digits.slice(full * 17), BYTES_FOR_DIGITS[rest]);
  return new Uint8Array(out);
}

export function toQrText(credential) { return QR_PREFIX + bytesToDigits(credential); }

/** The credential bytes carried by a scanned QR text (verification.format.credential_from_text). */
export function credentialFromText(text) {
  // Python counts code points; a JS string length counts UTF-16 units. Digits-only input is the same either way.
  if ([...text].length > MAX_QR_TEXT) throw new CredentialError("malformed", "scanned text too long");
  const cleaned = ASCII_DIGITS.test(text) ? text : cleanScannedText(text);
  if (!cleaned.startsWith("84") || cleaned.length < 4) throw new CredentialError("malformed", "not a member card");
  if (cleaned.slice(0, 4) !== QR_PREFIX) {
    throw new CredentialError("unsupported_version", `card format version ${cleaned.slice(2, 4)} is not supported`);
  }
  return digitsToBytes(cleaned.slice(4));
}

// --- strict CBOR -------------------------------------------------------------------------------------------------
// Decoding keeps every item's kind (ints as number or BigInt, floats with their width, tags, simple values), then
// the caller re-encodes deterministically and compares with the received bytes, exactly as verification/format.py
// does with cbor2 (canonical=True: shortest integers and floats, definite lengths, map keys sorted by encoded
// length then bytes). Any difference, duplicate map key, trailing byte or undecodable item is "malformed".

export class CborTag { constructor(tag, value) { this.tag = tag; this.value = value; } }
export class CborMap { constructor(entries) { this.entries = entries; } get size() { return this.entries.length; } }
export class CborFloat { constructor(value) { this.value = value; } }
export class CborSimple { constructor(value) { this.value = value; } }
class CborError extends Error {}

const MAX_DEPTH = 32;
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function floatToHalfExact(value) {
  // The half-precision bits of value when it converts without loss, otherwise null.
  if (Number.isNaN(value)) return 0x7e00;
  if (value === Infinity) return 0x7c00;
  if (value === -Infinity) return 0xfc00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  if (magnitude === 0) return sign;
  for (let exponent = 1; exponent < 31; exponent += 1) {
    const fraction = (magnitude / 2 ** (exponent - 15) - 1) * 1024;
    if (fraction >= 0 && fraction < 1024 && Number.isInteger(fraction)) return sign | (exponent << 10) | fraction;
  }
  const sub = magnitude / 2 ** -14 * 1024;
  if (Number.isInteger(sub) && sub < 1024) return sign | sub;
  return null;
}

function decodeItem(view, bytes, state, depth) {
  if (depth > MAX_DEPTH) throw new CborError("nested too deeply");
  const at = state.pos;
  if (at >= bytes.length) throw new CborError("truncated");
  const initial = bytes[at];
  state.pos += 1;
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (major === 7) {
    if (info < 20) return new CborSimple(info);
    if (info === 20) return false;
    if (info === 21) return true;
    if (info === 22) return null;
    if (info === 23) return undefined;
    if (info === 24) {
      if (state.pos + 1 > bytes.length) throw new CborError("truncated");
      const value = bytes[state.pos]; state.pos += 1;
      if (value < 32) throw new CborError("invalid simple value");
      return new CborSimple(value);
    }
    const widths = { 25: 2, 26: 4, 27: 8 };
    const width = widths[info];
    if (width === undefined) throw new CborError("reserved or break");
    if (state.pos + width > bytes.length) throw new CborError("truncated");
    let value;
    if (width === 2) value = halfToFloat(view.getUint16(state.pos));
    else if (width === 4) value = view.getFloat32(state.pos);
    else value = view.getFloat64(state.pos);
    state.pos += width;
    return new CborFloat(value);
  }
  let argument;
  if (info < 24) argument = info;
  else if (info <= 27) {
    const width = 1 << (info - 24);
    if (state.pos + width > bytes.length) throw new CborError("truncated");
    if (width === 8) {
      const big = view.getBigUint64(state.pos);
      argument = big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    } else if (width === 4) argument = view.getUint32(state.pos);
    else if (width === 2) argument = view.getUint16(state.pos);
    else argument = bytes[state.pos];
    state.pos += width;
  } else throw new CborError("indefinite length or reserved value");
  switch (major) {
    case 0: return argument;
    case 1: return typeof argument === "bigint" || argument + 1 > Number.MAX_SAFE_INTEGER
      ? -1n - BigInt(argument) : -1 - argument;
    case 2: case 3: {
      if (typeof argument === "bigint" || state.pos + argument > bytes.length) throw new CborError("truncated");
      const chunk = bytes.slice(state.pos, state.pos + argument);
      state.pos += argument;
      if (major === 2) return chunk;
      try { return utf8Decoder.decode(chunk); } catch { throw new CborError("invalid UTF-8"); }
    }
    case 4: {
      if (typeof argument === "bigint" || argument > bytes.length - state.pos) throw new CborError("truncated");
      const items = [];
      for (let i = 0; i < argument; i += 1) items.push(decodeItem(view, bytes, state, depth + 1));
      return items;
    }
    case 5: {
      if (typeof argument === "bigint" || argument * 2 > bytes.length - state.pos) throw new CborError("truncated");
      const entries = [];
      const seen = new Set();
      for (let i = 0; i < argument; i += 1) {
        const start = state.pos;
        const key = decodeItem(view, bytes, state, depth + 1);
        const keyBytes = hex(encodeCbor(key));
        if (seen.has(keyBytes) || seen.has(hex(bytes.subarray(start, state.pos)))) {
          throw new CborError("duplicate map key");
        }
        seen.add(keyBytes);
        entries.push([key, decodeItem(view, bytes, state, depth + 1)]);
      }
      return new CborMap(entries);
    }
    default: // 6
      return new CborTag(argument, decodeItem(view, bytes, state, depth + 1));
  }
}

/** Decode one CBOR item that must fill ``bytes`` exactly; throws CredentialError("malformed") otherwise. */
export function decodeCbor(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const state = { pos: 0 };
  let value;
  try {
    value = decodeItem(view, bytes, state, 0);
  } catch (error) {
    if (error instanceof CborError || error instanceof RangeError) {
      throw new CredentialError("malformed", `not valid CBOR: ${error.message}`);
    }
    throw error;
  }
  if (state.pos !== bytes.length) throw new CredentialError("malformed", "trailing bytes after the CBOR item");
  return value;
}

function head(major, argument) {
  const value = BigInt(argument);
  const m = major << 5;
  if (value < 24n) return [m | Number(value)];
  if (value < 0x100n) return [m | 24, Number(value)];
  if (value < 0x10000n) return [m | 25, Number(value >> 8n), Number(value & 0xffn)];
  const width = value < 0x100000000n ? 4 : 8;
  const out = [m | (width === 4 ? 26 : 27)];
  for (let k = width - 1; k >= 0; k -= 1) out.push(Number((value >> BigInt(8 * k)) & 0xffn));
  return out;
}

function encodeInto(value, out) {
  if (typeof value === "number" || typeof value === "bigint") {
    const big = BigInt(value);
    if (big >= 0n) out.push(...head(0, big)); else out.push(...head(1, -1n - big));
  } else if (value instanceof Uint8Array) {
    out.push(...head(2, value.length)); for (const byte of value) out.push(byte);
  } else if (typeof value === "string") {
    const encoded = utf8Encoder.encode(value);
    out.push(...head(3, encoded.length)); for (const byte of encoded) out.push(byte);
  } else if (Array.isArray(value)) {
    out.push(...head(4, value.length)); for (const item of value) encodeInto(item, out);
  } else if (value instanceof CborMap) {
    const encoded = value.entries.map(([key, item]) => [encodeCbor(key), item]);
    encoded.sort(([a], [b]) => (a.length - b.length) || compareBytes(a, b));
    out.push(...head(5, encoded.length));
    for (const [key, item] of encoded) { for (const byte of key) out.push(byte); encodeInto(item, out); }
  } else if (value instanceof CborTag) {
    out.push(...head(6, value.tag)); encodeInto(value.value, out);
  } else if (value instanceof CborFloat) {
    const half = floatToHalfExact(value.value);
    if (half !== null) { out.push(0xf9, half >> 8, half & 0xff); return; }
    const buffer = new DataView(new ArrayBuffer(8));
    if (Math.fround(value.value) === value.value) {
      buffer.setFloat32(0, value.value); out.push(0xfa, ...new Uint8Array(buffer.buffer, 0, 4));
    } else {
      buffer.setFloat64(0, value.value); out.push(0xfb, ...new Uint8Array(buffer.buffer, 0, 8));
    }
  } else if (value instanceof CborSimple) {
    if (value.value < 20) out.push(0xe0 | value.value); else out.push(0xf8, value.value);
  } else if (value === false) out.push(0xf4);
  else if (value === true) out.push(0xf5);
  else if (value === null) out.push(0xf6);
  else if (value === undefined) out.push(0xf7);
  else throw new TypeError("cannot encode");
}

/** Deterministic CBOR encoding (as cbor2.dumps(value, canonical=True)). */
export function encodeCbor(value) {
  const out = [];
  encodeInto(value, out);
  return new Uint8Array(out);
}

function requireCanonical(value, data, what) {
  if (!equalBytes(encodeCbor(value), data)) {
    throw new CredentialError("malformed", `${what} is not in deterministic CBOR encoding`);
  }
}

// --- COSE_Sign1 credential -------------------------------------------------------------------------------------

export const isInt = (value) => (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";
const isUint = (value) => typeof value === "number" && Number.isInteger(value) && value >= 0;

export function mapGet(map, key) {
  for (const [k, v] of map.entries) if (isInt(k) && BigInt(k) === BigInt(key)) return v;
  return undefined;
}

function hasExactlyIntKeys(map, keys) {
  if (!(map instanceof CborMap) || map.size !== keys.length) return false;
  // Every key an integer (never a float, boolean or text that could compare equal) and each wanted key present.
  return map.entries.every(([k]) => isInt(k)) && keys.every((key) => mapGet(map, key) !== undefined);
}

export function dayOf(seconds) {
  // verification.format._day_of: the Vietnam-time calendar day holding ``seconds``, as "YYYY-MM-DD".
  const days = Math.floor((seconds + VIETNAM_OFFSET) / DAY);
  return new Date(days * DAY * 1000).toISOString().slice(0, 10);
}

export function dayStart(isoDay) {
  // verification.format.day_start: 00:00 Vietnam time of a calendar day, as seconds since the epoch.
  return Date.parse(`${isoDay}T00:00:00Z`) / 1000 - VIETNAM_OFFSET;
}

/** Why ``name`` cannot be a card's display name (docs/card-format.md §6.3), or null (format.name_problem). */
export function nameProblem(name) {
  if (FORBIDDEN_TEXT.test(name)) return "display name holds a control, bidi, invisible or non-printing character";
  const size = utf8Encoder.encode(name).length;
  if (size === 0 || size > MAX_NAME_BYTES) return "display name must be 1 to 100 bytes of UTF-8";
  if (name.normalize("NFC") !== name) return "display name is not in Unicode NFC";
  return null;
}

function checkValues(cti, memberNumber, name, chapter, cardVersion, statusList, statusIndex, iat, exp) {
  // verification.format._check_values: the limits of docs/card-format.md §6.2, all "malformed".
  const malformed = (message) => new CredentialError("malformed", message);
  if (cti.length !== 8) throw malformed("card id must be 8 bytes");
  if (memberNumber > MAX_MEMBER_NUMBER) throw malformed("member number out of range");
  if (!(cardVersion < UINT32_LIMIT && statusList < UINT32_LIMIT && statusIndex < UINT32_LIMIT)) {
    throw malformed("card version and status reference must be 32-bit unsigned integers");
  }
  if (!(iat < exp && exp <= LAST_NUMERIC_DATE)) throw malformed("validity dates out of range");
  if ((iat + VIETNAM_OFFSET) % DAY !== 0 || (exp + VIETNAM_OFFSET) % DAY !== 0) {
    throw malformed("validity dates must be 00:00 Vietnam time");
  }
  const problem = nameProblem(name);
  if (problem !== null) throw malformed(problem);
  if (!CHAPTER_CODE.test(chapter)) throw malformed("chapter code must be 1 to 32 of A-Z, 0-9, '.', '_', '-'");
}

function parseClaims(payload, bound) {
  const body = decodeCbor(payload);
  requireCanonical(body, payload, "claims");
  // A copy of a live code's credential without its holder's proof (docs/card-format.md §8.3).
  if (!bound && hasExactlyIntKeys(body, [4, 6, 7, 8, PRIVATE_CLAIM])) {
    throw new CredentialError("holder_proof_invalid", "a holder-bound credential is valid only in a live code");
  }
  if (!hasExactlyIntKeys(body, bound ? [4, 6, 7, 8, PRIVATE_CLAIM] : [4, 6, 7, PRIVATE_CLAIM])) {
    throw new CredentialError("malformed", "claims set has missing or unknown claims");
  }
  const card = mapGet(body, PRIVATE_CLAIM);
  const version = Array.isArray(card) && card.length ? card[0] : null;
  // A version is an unsigned integer; a negative one or another type is no version at all.
  if (!isInt(version) || BigInt(version) < 0n) {
    throw new CredentialError("malformed", "card claim missing or without a version");
  }
  if (BigInt(version) !== 1n) throw new CredentialError("unsupported_version", `claims version ${version}`);
  if (card.length !== 7) throw new CredentialError("malformed", "card claim has the wrong number of fields");
  const [, memberNumber, name, chapter, cardVersion, statusList, statusIndex] = card;
  const exp = mapGet(body, 4);
  const iat = mapGet(body, 6);
  const cti = mapGet(body, 7);
  if (![memberNumber, cardVersion, statusList, statusIndex, exp, iat].every(isUint)
      || typeof name !== "string" || typeof chapter !== "string" || !(cti instanceof Uint8Array)) {
    throw new CredentialError("malformed", "claims have wrong types");
  }
  checkValues(cti, memberNumber, name, chapter, cardVersion, statusList, statusIndex, iat, exp);
  const claims = {
    card_id: hex(cti),
    member_number: String(memberNumber).padStart(10, "0"),
    display_name: name,
    chapter_code: chapter,
    card_version: cardVersion,
    issued_on: dayOf(iat),
    expires_on: dayOf(exp - DAY),
    status_list: statusList,
    status_index: statusIndex,
  };
  return bound ? { claims, cnf: mapGet(body, 8) } : { claims };
}

/**
 * Structure checks of docs/card-format.md §6.1 step 2 (the signature is NOT checked here). With ``bound`` the
 * credential is a live code's (§8.1): its claims hold ``cnf`` too, returned undecoded for live.js to check.
 */
export function parseCredential(raw, { bound = false } = {}) {
  if (!(raw instanceof Uint8Array) || raw.length === 0 || raw.length > MAX_CREDENTIAL_BYTES) {
    throw new CredentialError("malformed", "credential size out of bounds");
  }
  const outer = decodeCbor(raw);
  requireCanonical(outer, raw, "credential");
  if (!(outer instanceof CborTag) || outer.tag !== 18) throw new CredentialError("malformed", "not a COSE_Sign1");
  const parts = outer.value;
  if (!Array.isArray(parts) || parts.length !== 4) throw new CredentialError("malformed", "need four parts");
  const [protectedBytes, unprotected, payload, signature] = parts;
  if (!(protectedBytes instanceof Uint8Array && payload instanceof Uint8Array && signature instanceof Uint8Array)) {
    throw new CredentialError("malformed", "COSE_Sign1 parts have wrong types");
  }
  if (!(unprotected instanceof CborMap) || unprotected.size !== 0) {
    throw new CredentialError("malformed", "unprotected header must be empty");
  }
  const header = decodeCbor(protectedBytes);
  requireCanonical(header, protectedBytes, "protected header");
  if (!hasExactlyIntKeys(header, [1, 4])) {
    throw new CredentialError("malformed", "protected header must hold exactly alg and kid");
  }
  const algorithm = mapGet(header, 1);
  const kid = mapGet(header, 4);
  // The format has room for two algorithms only: any other is malformed (docs/card-format.md §6.1, step 2).
  if (typeof algorithm !== "number" || !(algorithm === ALG_EDDSA || algorithm === ALG_ES256)) {
    throw new CredentialError("malformed", "algorithm not allowed");
  }
  if (!(kid instanceof Uint8Array) || kid.length !== 2) throw new CredentialError("malformed", "kid must be 2 bytes");
  if (signature.length !== 64) throw new CredentialError("malformed", "signature must be 64 raw bytes");
  return { raw, protected: protectedBytes, algorithm, kid: hex(kid), payload, signature, ...parseClaims(payload, bound) };
}

/** The COSE Sig_structure ["Signature1", protected, h'', payload] over exactly the received bytes. */
export function sigStructure(protectedBytes, payload) {
  return encodeCbor(["Signature1", protectedBytes, new Uint8Array(0), payload]);
}

// --- keys and signatures ---------------------------------------------------------------------------------------

/** Import a JWK of verification/crypto.public_jwk: returns {kid (hex), algorithm (-8 / -7), key (CryptoKey)}. */
export async function importJwk(jwk) {
  const algorithm = { EdDSA: ALG_EDDSA, ES256: ALG_ES256 }[jwk && jwk.alg];
  const kid = typeof jwk?.kid === "string" ? jwk.kid.toLowerCase() : "";
  if (algorithm === undefined || !/^[0-9a-f]{4}$/.test(kid)) throw new TrustError("unsupported JWK");
  let key;
  try {
    if (algorithm === ALG_EDDSA && jwk.kty === "OKP" && jwk.crv === "Ed25519") {
      key = await crypto.subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, { name: "Ed25519" },
        false, ["verify"]);
    } else if (algorithm === ALG_ES256 && jwk.kty === "EC" && jwk.crv === "P-256") {
      key = await crypto.subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
        { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    }
  } catch (error) {
    throw new TrustError(`JWK does not import: ${error.message}`);
  }
  if (!key) throw new TrustError("JWK key type does not match its algorithm");
  return { kid, algorithm, key };
}

export async function verifyRaw(algorithm, key, signature, data) {
  if (signature.length !== 64) return false;
  try {
    if (algorithm === ALG_EDDSA) return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, data);
    // WebCrypto ECDSA takes the raw r || s form, which is exactly what COSE and JWS carry (never DER).
    return await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature, data);
  } catch {
    return false;
  }
}

// --- JWTs signed by the trust anchor ---------------------------------------------------------------------------

function b64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new TrustError("not base64url");
  }
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

function jsonPart(text, what) {
  try {
    const value = JSON.parse(utf8Decoder.decode(b64urlDecode(text)));
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value;
  } catch (error) {
    throw new TrustError(`${what} is not a JSON object: ${error.message}`);
  }
}

/**
 * verification.trust.decode_anchor_jwt, the one check of the trust bundle, the status lists and the event bundle:
 * the size, kid and typ from the header, the algorithm of the anchor (never the token's choice), the signature, the
 * required claims, ``sub`` when ``subject`` is given, integer ``iat`` and ``exp``, ``iat`` at most CLOCK_SKEW ahead
 * of ``now`` and ``exp`` not before it. Returns the claims.
 */
export async function verifyAnchorJwt(token, anchor, { typ, maxChars, require = [], subject = null, now, what }) {
  if (typeof token !== "string" || token.length > maxChars) throw new TrustError(`${what} too large`);
  const parts = token.split(".");
  if (parts.length !== 3) throw new TrustError(`${what} is not a compact JWS`);
  const header = jsonPart(parts[0], "header");
  if (header.kid !== anchor.kid || header.typ !== typ) {
    throw new TrustError(`${what} is not signed by the pinned trust key or is of the wrong type`);
  }
  if (header.alg !== ALGORITHM_NAMES[anchor.algorithm]) throw new TrustError(`${what}: algorithm not allowed`);
  const signature = b64urlDecode(parts[2]);
  const data = utf8Encoder.encode(`${parts[0]}.${parts[1]}`);
  if (!(await verifyRaw(anchor.algorithm, anchor.key, signature, data))) {
    throw new TrustError(`${what}: signature verification failed`);
  }
  const claims = jsonPart(parts[1], "payload");
  for (const name of ["iat", "exp", ...require]) {
    if (!(name in claims)) throw new TrustError(`${what}: missing ${name}`);
  }
  if (subject !== null && claims.sub !== subject) throw new TrustError(`${what} is for another subject`);
  if (!Number.isInteger(claims.iat) || !Number.isInteger(claims.exp)) {
    throw new TrustError(`${what}: iat or exp is not an integer`);
  }
  if (claims.iat > now + CLOCK_SKEW) throw new TrustError(`${what} is issued in the future; check the clock`);
  if (claims.exp < now) throw new TrustError(`${what} has expired; download a fresh one`);
  return claims;
}

/** verification.trust.verify_trust_bundle: card keys (kid → {algorithm, key, status}) and status-list URIs. */
export async function verifyTrustBundle(token, anchor, now) {
  const claims = await verifyAnchorJwt(token, anchor, {
    typ: TRUST_BUNDLE_TYP, maxChars: MAX_TRUST_TOKEN_CHARS, require: ["iss", "keys", "status_lists"], now,
    what: "trust bundle",
  });
  if (!Array.isArray(claims.keys) || !Array.isArray(claims.status_lists)) {
    throw new TrustError("trust bundle content is malformed");
  }
  const keys = new Map();
  for (const entry of claims.keys) {
    const imported = await importJwk(entry);
    if (!["active", "retired", "compromised"].includes(entry.status) || keys.has(imported.kid)) {
      throw new TrustError("trust bundle key entry is invalid or duplicated");
    }
    keys.set(imported.kid, { ...imported, status: entry.status });
  }
  const statusLists = new Map();
  for (const entry of claims.status_lists) {
    if (!entry || !Number.isInteger(Number(entry.id)) || entry.uri === undefined) {
      throw new TrustError("trust bundle content is malformed");
    }
    statusLists.set(Number(entry.id), String(entry.uri));
  }
  return {
    issuer: String(claims.iss), issuerName: String(claims.issuer_name ?? ""), issuedAt: claims.iat,
    expiresAt: claims.exp, keys, statusLists, anchor, token,
  };
}

async function inflateCapped(compressed, cap) {
  // One complete zlib stream ("deflate" in the Compression Streams spec, which errors on a truncated stream and on
  // data after its end); stops reading past the cap (zip-bomb guard).
  const stream = new Blob([compressed]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > cap) {
        await reader.cancel();
        throw new TrustError("status list is larger than allowed");
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof TrustError) throw error;
    throw new TrustError("status list content is corrupt");
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) { out.set(chunk, offset); offset += chunk.length; }
  return out;
}

/** A verified, decompressed status list (verification.status.StatusListView). */
export class StatusListView {
  constructor(uri, data, issuedAt, expiresAt, ttl) {
    Object.assign(this, { uri, data, issuedAt, expiresAt, ttl });
  }

  get size() { return this.data.length * 4; }

  status(index) {
    if (!(Number.isInteger(index) && index >= 0 && index < this.size)) throw new RangeError("index outside");
    return (this.data[Math.floor(index / 4)] >> (2 * (index % 4))) & 0b11;
  }
}

/**
 * verification.status.verify_status_list (docs/card-format.md §6.4): the anchor's signature before decompression,
 * ``sub`` equal to the list URI, the clock, ``exp = iat + 2·ttl``, 2 bits, unpadded base64url of one zlib stream.
 */
export async function verifyStatusList(token, anchor, uri, now) {
  const claims = await verifyAnchorJwt(token, anchor, {
    typ: STATUS_LIST_TYP, maxChars: MAX_STATUS_TOKEN_CHARS, require: ["sub", "ttl", "status_list"], subject: uri, now,
    what: "status list",
  });
  if (!Number.isInteger(claims.ttl) || claims.ttl < 1 || claims.exp !== claims.iat + 2 * claims.ttl) {
    throw new TrustError("status list ttl must be a positive integer with exp = iat + 2 * ttl");
  }
  const body = claims.status_list;
  if (!body || typeof body !== "object" || body.bits !== 2 || typeof body.lst !== "string") {
    throw new TrustError("status list has an unsupported layout");
  }
  let compressed;
  try { compressed = b64urlDecode(body.lst); } catch { throw new TrustError("status list content is not base64url"); }
  const data = await inflateCapped(compressed, MAX_LIST_BYTES);
  return new StatusListView(uri, data, claims.iat, claims.exp, claims.ttl);
}

/** verification.verify.StatusLists: status(listId, index) → 0..3, null when the list is unavailable. */
export class StatusLists {
  constructor(lists) { this.lists = lists instanceof Map ? lists : new Map(Object.entries(lists ?? {})); }

  status(listId, index) {
    const view = this.lists.get(listId) ?? this.lists.get(String(listId));
    return view === undefined ? null : view.status(index);
  }
}

// --- the decision -------------------------------------------------------------------------------------------------

export async function payloadHash(scanned) {
  const data = typeof scanned === "string" ? utf8Encoder.encode(scanned) : scanned;
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
}

const STATUS_REASONS = { 1: "revoked", 2: "suspended", 3: "superseded" };

/**
 * verification.verify.verify: scanned QR text (or raw NFC bytes) → verdict, never throwing on bad input.
 *
 * @param {string|Uint8Array} scanned what the reader delivered
 * @param {{keys: Map<string, {algorithm:number, key:CryptoKey, status:string}>}} trust a verified trust bundle
 * @param {{status(listId:number, index:number): number|null}} status verified status lists
 * @param {number} now the station's clock, seconds since the epoch
 * @returns {Promise<{ok:boolean, reason:string|null, claims:object|null, kid:string|null, payloadHash:string,
 *   statusChecked:boolean}>}
 */
export async function verify(scanned, trust, status, now, { onMissingStatus = "reject" } = {}) {
  const digest = await payloadHash(scanned);
  if (typeof scanned === "string" && isLiveText(scanned)) {
    return verifyLive(scanned, trust, status, now, { onMissingStatus, digest });
  }
  let parsed;
  try {
    const raw = typeof scanned === "string" ? credentialFromText(scanned) : scanned;
    parsed = parseCredential(raw);
  } catch (error) {
    return deniedVerdict(error instanceof CredentialError ? error.reason : "malformed", digest);
  }
  const refused = await cardKeyRefusal(parsed, trust);
  if (refused !== null) return deniedVerdict(refused, digest, { kid: parsed.kid });
  return datesAndStatus(parsed.claims, parsed.kid, digest, status, now, { onMissingStatus, live: false });
}

/** A refusing verdict (verification.verify.Verdict.denied). */
export function deniedVerdict(reason, digest, extra = {}) {
  return { ok: false, reason, claims: null, kid: null, payloadHash: digest, statusChecked: false, live: false,
    ...extra };
}

/** Step 3 of docs/card-format.md §6.1: the key id, a compromised key, the bound algorithm and the signature. */
export async function cardKeyRefusal(parsed, trust) {
  const trusted = trust.keys.get(parsed.kid);
  if (trusted === undefined) return "unknown_key";
  // A compromised key's signatures prove nothing: no claims are shown.
  if (trusted.status === "compromised") return "key_retired";
  if (parsed.algorithm !== trusted.algorithm) return "bad_signature";
  // (r, n - s) verifies as well as (r, s): only the low-S form the issuer emits is accepted.
  if (trusted.algorithm === ALG_ES256 && BigInt(`0x${hex(parsed.signature.subarray(32))}`) > P256_HALF_ORDER) {
    return "bad_signature";
  }
  const signed = sigStructure(parsed.protected, parsed.payload);
  if (!(await verifyRaw(trusted.algorithm, trusted.key, parsed.signature, signed))) return "bad_signature";
  return null;
}

/** Steps 4 and 5 of docs/card-format.md §6.1 for claims whose signature verified. */
export function datesAndStatus(claims, kid, digest, status, now, { onMissingStatus, live }) {
  const denied = (reason, extra = {}) => deniedVerdict(reason, digest, { kid, claims, live, ...extra });
  const valid = (statusChecked) => ({ ok: true, reason: null, claims, kid, payloadHash: digest, statusChecked, live });
  // Valid from iat - CLOCK_SKEW to exp + CLOCK_SKEW, exp excluded (docs/card-format.md §6.1, step 4).
  if (now < dayStart(claims.issued_on) - CLOCK_SKEW) return denied("not_yet_valid");
  if (now >= dayStart(claims.expires_on) + DAY + CLOCK_SKEW) return denied("expired");
  let value;
  try {
    value = status.status(claims.status_list, claims.status_index);
  } catch {
    return denied("malformed", { statusChecked: true });
  }
  if (value === null || value === undefined) {
    return onMissingStatus === "accept" ? valid(false) : denied("revoked");
  }
  if (value === 0) return valid(true);
  return denied(STATUS_REASONS[value] ?? "revoked", { statusChecked: true });
}

// --- the event bundle and the event rules ------------------------------------------------------------------------

function timestamp(value, what) {
  if (typeof value !== "string" || !/(Z|[+-]\d\d:\d\d)$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new TrustError(`event bundle ${what} is not a timestamp with a time zone`);
  }
  return Date.parse(value) / 1000;
}

function text(value, what) {
  if (typeof value !== "string") throw new TrustError(`event bundle ${what} is not text`);
  return value;
}

/**
 * verification.event_bundle.verify_event_bundle with the pinned anchor: the outer token as of ``now``, the trust
 * bundle as of ``now``, the status lists as of the bundle's ``iat`` (a snapshot), then the roster and check-ins.
 */
export async function verifyEventBundle(token, anchor, now) {
  const claims = await verifyAnchorJwt(token, anchor, {
    typ: EVENT_BUNDLE_TYP, maxChars: MAX_BUNDLE_CHARS,
    require: ["iss", "event", "trust_bundle", "status_lists", "roster", "checkins"], now, what: "event bundle",
  });
  const trust = await verifyTrustBundle(text(claims.trust_bundle, "trust bundle"), anchor, now);
  if (text(claims.iss, "iss") !== trust.issuer) throw new TrustError("bundle and trust bundle issuers differ");
  if (!claims.status_lists || typeof claims.status_lists !== "object") throw new TrustError("bad status lists");
  const lists = new Map();
  for (const [key, listToken] of Object.entries(claims.status_lists)) {
    const listId = Number(key);
    const uri = trust.statusLists.get(listId);
    if (!Number.isInteger(listId) || uri === undefined) throw new TrustError(`status list ${key} is not named`);
    lists.set(listId, await verifyStatusList(text(listToken, "status list"), anchor, uri, claims.iat));
  }
  const raw = claims.event;
  if (!raw || typeof raw !== "object" || !Number.isInteger(raw.id)) {
    throw new TrustError("event bundle has no valid event");
  }
  // The rules sit beside the event's identity, as in the bundle (app.js reads bundle.event.opensAt and closesAt).
  const event = {
    id: raw.id, title: text(raw.title, "title"), venue: text(raw.venue, "venue"),
    startsAt: timestamp(raw.starts_at, "starts_at"), endsAt: timestamp(raw.ends_at, "ends_at"), ...entryRulesOf(raw),
  };
  if (!Array.isArray(claims.roster) || !Array.isArray(claims.checkins)) throw new TrustError("bad roster");
  const roster = claims.roster.map((entry) => {
    if (!entry || !Array.isArray(entry.card_ids)) throw new TrustError("event bundle roster entry is malformed");
    return {
      member_number: text(entry.member_number, "member_number"), name: text(entry.name, "name"),
      chapter_code: text(entry.chapter_code, "chapter_code"), chapter_name: text(entry.chapter_name, "chapter_name"),
      card_ids: entry.card_ids.map((card) => text(card, "card id").toLowerCase()),
      search: foldText(`${entry.name} ${entry.member_number}`),
    };
  });
  const byCard = new Map();
  for (const entry of roster) for (const card of entry.card_ids) byCard.set(card, entry);
  const checkins = claims.checkins.map((entry) => {
    if (!entry || !["in", "out"].includes(entry.direction) || !Number.isInteger(entry.seq)) {
      throw new TrustError("event bundle check-in is malformed");
    }
    return { member_number: text(entry.member_number, "member_number"), seq: entry.seq, direction: entry.direction,
      at: timestamp(entry.at, "check-in time"), station_id: entry.station_id ?? null };
  });
  return {
    issuer: claims.iss, issuedAt: claims.iat, expiresAt: claims.exp, event, trust, statusLists: new StatusLists(lists),
    roster, byCard, checkins, token,
  };
}

/**
 * verification.event_bundle.entry_rules_of: the entry rules in a bundle's ``event`` object, times in seconds. A
 * bundle signed before live codes existed names no live_policy: "any".
 *
 * @returns {{opensAt:number, closesAt:number, eligibility:string, mode:string, allowReentry:boolean, status:string,
 *   livePolicy:string}}
 */
export function entryRulesOf(raw) {
  if (!raw || typeof raw !== "object" || typeof raw.allow_reentry !== "boolean") {
    throw new TrustError("event bundle allow_reentry is not a boolean");
  }
  const livePolicy = raw.live_policy === undefined ? "any" : raw.live_policy;
  if (!LIVE_POLICIES.includes(livePolicy)) throw new TrustError("event bundle live_policy is invalid");
  return {
    opensAt: timestamp(raw.checkin_opens_at, "checkin_opens_at"),
    closesAt: timestamp(raw.checkin_closes_at, "checkin_closes_at"),
    eligibility: text(raw.eligibility, "eligibility"), mode: text(raw.mode, "mode"), allowReentry: raw.allow_reentry,
    status: text(raw.status, "status"), livePolicy,
  };
}

/**
 * verification.entry.decide_entry, the entry rules of the server and the door station: the event's choice of cards
 * (a card that is not live at a live_required event: live_code_required), the event closed, the scan outside the
 * check-in window, the holder not eligible, then her accepted scans (ordered by time, an entry before an exit at the
 * same instant): none → "in"; entry/exit after an entry → "out"; otherwise "in" again only with re-entry, else
 * already_checked_in with her first entry. A printed card let in at a live_preferred event gets idCheck.
 * tests/vectors/entry-rules.json runs it against Python. (Python takes eligibility and the entries as sources read
 * on demand, for the server's database; here they are in memory.)
 *
 * @param rules what entryRulesOf returns (a bundle's event carries it)
 * @param priorEntries her accepted scans at this event: [{at (seconds), direction, ...}], any order
 * @param at the scan time, seconds
 * @param eligible whether she may attend (on the roster)
 * @param live whether the card was a live code (verdict.live); null when no card was shown
 * @returns {{ok:boolean, reason:string|null, direction:string|null, first:object|null, idCheck:boolean}}
 */
export function decideEntry(rules, priorEntries, at, eligible, live) {
  const refuse = (reason, first = null) => ({ ok: false, reason, direction: null, first, idCheck: false });
  const printed = live === false;
  const idCheck = printed && rules.livePolicy === "live_preferred";
  const admit = (direction) => ({ ok: true, reason: null, direction, first: null, idCheck });
  // An unknown policy is treated as live_required (fail closed).
  if (printed && rules.livePolicy !== "any" && rules.livePolicy !== "live_preferred") {
    return refuse("live_code_required");
  }
  if (rules.status === "closed") return refuse("event_closed");
  if (!(rules.opensAt <= at && at <= rules.closesAt)) return refuse("outside_window");
  if (!eligible) return refuse("not_eligible");
  const entries = [...priorEntries].sort((a, b) => (a.at - b.at) || (a.direction === b.direction ? 0
    : a.direction === "in" ? -1 : 1));
  if (!entries.length) return admit("in");
  if (rules.mode === "entry_exit" && entries[entries.length - 1].direction === "in") return admit("out");
  if (rules.allowReentry) return admit("in");
  return refuse("already_checked_in", entries[0]);
}

/**
 * What the station decides offline after the card verdict (cardsvc/services/checkins.py order): the card's own
 * reason, then decideEntry with the bundle's rules (the event's choice of cards among them), its roster
 * (eligibility) and the member's known entries.
 *
 * @param bundle a verified event bundle
 * @param verdict the card verdict from verify()
 * @param entries accepted entries known to the station for this event: [{member_number, direction, at}]
 * @param at the scan time, seconds
 * @returns {{ok:boolean, reason:string|null, member:object|null, direction:string|null, first:object|null,
 *   idCheck:boolean}}
 */
export function eventDecision(bundle, verdict, entries, at) {
  const member = verdict.claims ? bundle.byCard.get(verdict.claims.card_id) ?? null : null;
  if (!verdict.ok) return { ok: false, reason: verdict.reason, member, direction: null, first: null, idCheck: false };
  const mine = member === null ? [] : entries.filter((entry) => entry.member_number === member.member_number);
  return { ...decideEntry(bundle.event, mine, at, member !== null, verdict.live), member };
}

/** Accent-insensitive search text: NFD without combining marks, đ → d, lower case (DOMAIN.md §3). */
export function foldText(value) {
  return String(value).normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/[đĐ]/g, "d").toLowerCase()
    .replace(/\s+/g, " ").trim();
}

/** Roster entries matching a query by unaccented name words or member number. */
export function searchRoster(roster, query, limit = 20) {
  const folded = foldText(query);
  if (!folded) return [];
  const words = folded.split(" ");
  return roster.filter((entry) => words.every((word) => entry.search.includes(word))).slice(0, limit);
}

// --- bytes helpers -------------------------------------------------------------------------------------------------

export function hex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (!/^([0-9a-fA-F]{2})*$/.test(text)) throw new TypeError("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
