"""The check-in page's JavaScript verifier (cardsvc/web/checkin/static/verify.js), run in headless Chromium.

1. The golden vectors (tests/vectors/card-v1.json): every positive vector verifies with the same claims (from its QR
   text and from its raw bytes).
2. The negative vectors (tests/vectors/card-v1-negative.json), each in its own trust, status and clock context: the
   reason code and whether the claims are shown, as the Python verifier gives them
   (tests/verification/test_negative_vectors.py); the accepted edge inputs pass.
3. Parity with the Python reference: a trust bundle and a status list signed in Python, cards in every status and at
   every validity edge, and the JS verdict must equal :func:`verification.verify.verify`'s; the forbidden code points
   of names are the same in both, code point by code point.
4. The anchor-signed documents are refused when tampered with, signed by another key, or not what
   docs/card-format.md §6.4 allows, and the Python verifier refuses the same tokens.
5. The entry-rule vectors (tests/vectors/entry-rules.json): decideEntry gives the decision
   :func:`verification.entry.decide_entry` gives, the event's choice of cards included.
6. The live-code vectors (tests/vectors/card-v2-live.json): the same verdicts as the Python verifier's.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from issuance.binding import holder_key_of, live_qr_text, sign_bound_credential
from issuance.credential import sign_credential
from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from tests.vectors import make_live_vectors, make_vectors
from tests.verification import test_anchor_tokens as anchor_tokens
from tests.verification import test_entry as entry_vectors
from tests.web.harness import LiveServer, chromium, live_server, screenshot
from verification.crypto import public_jwk
from verification.errors import TrustError
from verification.format import ALG_EDDSA, ALG_ES256, CardClaims, day_start, name_problem, to_qr_text
from verification.status import STATUS_LIST_TYP, verify_status_list
from verification.trust import TRUST_BUNDLE_TYP, TrustAnchor, verify_trust_bundle
from verification.verify import StatusLists, verify

VECTORS: dict[str, Any] = json.loads(make_vectors.VECTORS_PATH.read_text(encoding="utf-8"))
NEGATIVE: dict[str, Any] = json.loads(make_vectors.NEGATIVE_PATH.read_text(encoding="utf-8"))
LIST_URI = "https://cards.example.vn/v1/status-lists/7"

# Runs a named scenario in the page: arguments[0] is the scenario's JSON, the last argument the callback.
RUN_VECTORS = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
(async () => {
  const keys = new Map();
  for (const jwk of input.jwks) { const k = await V.importJwk(jwk); keys.set(k.kid, {...k, status: "active"}); }
  const trust = {keys};
  const allValid = {status: () => 0};
  const out = [];
  for (const v of input.positive) {
    const fromText = await V.verify(v.qr_text, trust, allValid, v.now);
    const fromBytes = await V.verify(V.fromHex(v.credential), trust, allValid, v.now);
    out.push({name: v.name, text: fromText, bytes: fromBytes, digits: V.toQrText(V.fromHex(v.credential))});
  }
  return out;
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""

# Each negative or accepted vector in its own context: the kids it trusts (keys from the file) and its status lists.
RUN_NEGATIVE = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
(async () => {
  const imported = {};
  for (const [kid, jwk] of Object.entries(input.keys)) imported[kid] = await V.importJwk(jwk);
  const out = [];
  for (const v of input.vectors) {
    const keys = new Map(Object.entries(v.trust).map(([kid, status]) => [kid, {...imported[kid], status}]));
    const lists = new Map();
    for (const [id, list] of Object.entries(v.status_lists)) {
      const data = new Uint8Array(list.size / 4);
      for (const [index, value] of Object.entries(list.entries)) {
        data[Math.floor(index / 4)] |= value << (2 * (index % 4));
      }
      lists.set(Number(id), new V.StatusListView(`list-${id}`, data, 0, 2 ** 40, 1));
    }
    const scanned = v.input.qr_text !== undefined ? v.input.qr_text : V.fromHex(v.input.credential);
    out.push({name: v.name, verdict: await V.verify(scanned, {keys}, new V.StatusLists(lists), v.now)});
  }
  return out;
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""

# The code points for which nameProblem names a forbidden character, merged into [first, last] ranges.
RUN_FORBIDDEN = """
const [, done] = arguments;
const V = window.cardsvcVerify;
const forbidden = V.nameProblem("\\u0000");
const ranges = [];
for (let cp = 0; cp <= 0x10FFFF; cp += 1) {
  if (V.nameProblem(String.fromCodePoint(cp)) !== forbidden) continue;
  const last = ranges[ranges.length - 1];
  if (last && last[1] === cp - 1) last[1] = cp; else ranges.push([cp, cp]);
}
done(ranges);
"""

RUN_STATUS_TOKENS = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
(async () => {
  const anchor = await V.importJwk(input.anchor);
  const out = {};
  for (const [name, token] of Object.entries(input.tokens)) {
    try { await V.verifyStatusList(token, anchor, input.uri, input.now); out[name] = "accepted"; }
    catch (e) { out[name] = e.reason + ": " + e.message; }
  }
  return out;
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""

RUN_PARITY = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
(async () => {
  const anchor = await V.importJwk(input.anchor);
  const trust = await V.verifyTrustBundle(input.trust_bundle, anchor, input.now);
  const list = await V.verifyStatusList(input.status_list, anchor, input.uri, input.now);
  const lists = new V.StatusLists(new Map([[7, list]]));
  const out = [];
  for (const c of input.cases) {
    const verdict = await V.verify(c.qr_text, trust, lists, c.now);
    out.push({name: c.name, verdict});
  }
  const missing = await V.verify(input.cases[0].qr_text, trust, new V.StatusLists(new Map()), input.now);
  const accepted = await V.verify(input.cases[0].qr_text, trust, new V.StatusLists(new Map()), input.now,
                                  {onMissingStatus: "accept"});
  const refusals = {};
  for (const [name, token] of Object.entries(input.bad_tokens)) {
    try {
      await V.verifyTrustBundle(token, anchor, input.now);
      refusals[name] = "accepted";
    } catch (e) {
      refusals[name] = e.reason + ": " + e.message;
    }
  }
  let bomb;
  try { await V.verifyStatusList(input.bomb, anchor, input.uri, input.now); bomb = "accepted"; }
  catch (e) { bomb = e.message; }
  return {out, missing, accepted, refusals, bomb, size: list.size};
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("js-vectors")) as running:
        yield running


@pytest.fixture(scope="module")
def page(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    driver = chromium(user_data_dir=tmp_path_factory.mktemp("profile-js"))
    try:
        driver.set_script_timeout(30)
        driver.get(f"{server.url}/checkin/selftest")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        yield driver
    finally:
        driver.quit()


def _run(driver: webdriver.Chrome, script: str, data: dict[str, Any]) -> Any:
    result = driver.execute_async_script(script, data)
    assert not (isinstance(result, dict) and "error" in result), result.get("error")
    return result


def _claims_json(claims: CardClaims) -> dict[str, Any]:
    out = asdict(claims)
    out["card_id"] = claims.card_id.hex()
    out["issued_on"] = claims.issued_on.isoformat()
    out["expires_on"] = claims.expires_on.isoformat()
    return out


def test_golden_vectors(page: webdriver.Chrome) -> None:
    positive = [
        {"name": v["name"], "qr_text": v["qr_text"], "credential": v["credential"], "now": v["cwt"]["iat"] + 3600}
        for v in VECTORS["vectors"]
    ]
    jwks = [v["public_key"]["jwk"] for v in VECTORS["vectors"]]
    unique_jwks = list({jwk["kid"]: jwk for jwk in jwks}.values())
    result = _run(page, RUN_VECTORS, {"jwks": unique_jwks, "positive": positive})
    by_name = {v["name"]: v for v in VECTORS["vectors"]}
    assert len(result) == len(VECTORS["vectors"])
    for item in result:
        vector = by_name[item["name"]]
        expected = {k: v for k, v in vector["claims"].items() if k != "display_name_utf8_bytes"}
        for verdict in (item["text"], item["bytes"]):
            assert verdict["ok"] is True and verdict["reason"] is None, (item["name"], verdict)
            assert verdict["claims"] == expected, item["name"]
            assert verdict["kid"] == vector["kid"]
            assert verdict["statusChecked"] is True
        assert item["digits"] == vector["qr_text"]


def _run_vectors(driver: webdriver.Chrome, keys: dict[str, Any], vectors: list[dict[str, Any]]
                 ) -> dict[str, dict[str, Any]]:
    """Each vector in its own context through verify.js: its reason, and the claims shown exactly when it says."""
    result = _run(driver, RUN_NEGATIVE, {"keys": keys, "vectors": vectors})
    verdicts = {item["name"]: item["verdict"] for item in result}
    assert set(verdicts) == {vector["name"] for vector in vectors}
    for vector in vectors:
        verdict = verdicts[vector["name"]]
        assert (verdict["ok"], verdict["reason"]) == (vector["reason"] is None, vector["reason"]), vector["name"]
        assert (verdict["claims"] is not None) is vector["shows_claims"], vector["name"]
    return verdicts


def test_negative_vectors(page: webdriver.Chrome) -> None:
    """Every negative vector gets its reason, with the claims shown exactly when the file says; edges pass."""
    _run_vectors(page, NEGATIVE["keys"], NEGATIVE["vectors"] + NEGATIVE["accepted"])
    assert min(NEGATIVE["reasons"].values()) >= 3


def test_forbidden_code_points_are_the_same_as_in_python(page: webdriver.Chrome) -> None:
    forbidden = name_problem("\x00")
    assert forbidden is not None
    python: list[list[int]] = []
    for code_point in range(0x110000):
        if name_problem(chr(code_point)) != forbidden:
            continue
        if python and python[-1][1] == code_point - 1:
            python[-1][1] = code_point
        else:
            python.append([code_point, code_point])
    assert _run(page, RUN_FORBIDDEN, {}) == python
    # The bidi controls of the issue are among them.
    assert all(any(low <= cp <= high for low, high in python) for cp in [*range(0x202A, 0x202F),
                                                                            *range(0x2066, 0x206A)])


def _signer(vector_name: str) -> LocalSigner:
    vector = next(v for v in VECTORS["vectors"] if v["name"] == vector_name)
    raw = bytes.fromhex(vector["private_key"])
    if vector["alg"] == ALG_EDDSA:
        return LocalSigner(bytes.fromhex(vector["kid"]), ALG_EDDSA, Ed25519PrivateKey.from_private_bytes(raw))
    return LocalSigner(bytes.fromhex(vector["kid"]), ALG_ES256, ec.derive_private_key(int.from_bytes(raw, "big"),
                                                                                      ec.SECP256R1()))


def test_parity_with_the_python_verifier(page: webdriver.Chrome) -> None:
    """Statuses, validity edges (with the 10-minute skew) and compromised keys: the same verdict as in Python."""
    anchor_signer = LocalSigner(b"\xa1\x01", ALG_ES256, generate_private_key("es256"))
    ed, es = _signer("size_budget_ed25519"), _signer("size_budget_es256")
    compromised = LocalSigner(b"\xc0\x01", ALG_EDDSA, generate_private_key("ed25519"))
    now_dt = datetime.now(UTC).replace(microsecond=0)
    now = int(now_dt.timestamp())
    keys = [{**public_jwk(s.kid, s.algorithm, s.private_key.public_key()), "status": status}
            for s, status in ((ed, "active"), (es, "retired"), (compromised, "compromised"))]
    bundle_claims = {"iss": "https://cards.example.vn", "issuer_name": "Hội LHPN Việt Nam", "iat": now,
                     "exp": now + 86400, "format": {"qr_prefix": "8401", "version": 1}, "keys": keys,
                     "status_lists": [{"id": 7, "uri": LIST_URI, "bits": 2}]}
    trust_token = sign_jwt(anchor_signer, bundle_claims, typ=TRUST_BUNDLE_TYP)
    statuses = {10: 0, 11: 1, 12: 2, 13: 3}
    compressed = compress_status_bytes(build_status_bytes(4096, statuses.items()))
    list_token = status_list_jwt(anchor_signer, uri=LIST_URI, compressed=compressed, issued_at=now_dt,
                                 ttl_seconds=3600)
    today = (now_dt + timedelta(hours=7)).date()

    def card(name: str, signer: LocalSigner, index: int, issued: date, expires: date) -> str:
        claims = CardClaims(card_id=bytes([index % 256] * 8), member_number=f"{index:010d}", display_name=f"Thẻ {name}",
                            chapter_code="HNI", card_version=1, issued_on=issued, expires_on=expires,
                            status_list=7, status_index=index)
        return to_qr_text(sign_credential(claims, signer))

    year = timedelta(days=365)
    cases: list[dict[str, Any]] = [
        {"name": "valid_ed", "qr_text": card("a", ed, 10, today - year, today + year), "now": now},
        {"name": "retired_key_es", "qr_text": card("b", es, 10, today - year, today + year), "now": now},
        {"name": "revoked", "qr_text": card("c", ed, 11, today - year, today + year), "now": now},
        {"name": "suspended", "qr_text": card("d", ed, 12, today - year, today + year), "now": now},
        {"name": "superseded", "qr_text": card("e", ed, 13, today - year, today + year), "now": now},
        {"name": "compromised", "qr_text": card("f", compromised, 10, today - year, today + year), "now": now},
        {"name": "index_outside", "qr_text": card("g", ed, 5000, today - year, today + year), "now": now},
    ]
    # Validity edges in Vietnam time, one second either side of the 10-minute tolerance.
    edge_card = card("h", ed, 10, date(2026, 3, 1), date(2026, 3, 31))
    start, end = day_start(date(2026, 3, 1)), day_start(date(2026, 4, 1))
    for label, instant in (("before_start", start - 601), ("start_with_skew", start - 600),
                           ("last_moment", end + 599), ("after_end", end + 600)):
        cases.append({"name": f"edge_{label}", "qr_text": edge_card, "now": instant})
    for case in cases:
        case["now"] = int(case["now"])

    tampered = trust_token[:-6] + ("AAAAAA" if not trust_token.endswith("AAAAAA") else "BBBBBB")
    other_signer = LocalSigner(b"\xa1\x01", ALG_ES256, generate_private_key("es256"))
    forged = sign_jwt(other_signer, bundle_claims, typ=TRUST_BUNDLE_TYP)
    wrong_typ = sign_jwt(anchor_signer, bundle_claims, typ="JWT")
    expired = sign_jwt(anchor_signer, {**bundle_claims, "exp": now - 10}, typ=TRUST_BUNDLE_TYP)
    header, payload, _signature = trust_token.split(".")
    alg_none = header + "." + payload + "."
    bomb = status_list_jwt(anchor_signer, uri=LIST_URI, compressed=compress_status_bytes(bytes(5 * 2**20)),
                           issued_at=now_dt, ttl_seconds=3600)
    anchor_jwk = public_jwk(anchor_signer.kid, anchor_signer.algorithm, anchor_signer.private_key.public_key())

    result = _run(page, RUN_PARITY, {
        "anchor": anchor_jwk, "trust_bundle": trust_token, "status_list": list_token, "uri": LIST_URI, "now": now,
        "cases": cases, "bomb": bomb,
        "bad_tokens": {"tampered": tampered, "forged": forged, "wrong_typ": wrong_typ, "expired": expired,
                       "alg_none": alg_none, "garbage": "a.b"},
    })

    anchor = TrustAnchor.from_jwk(anchor_jwk)
    trust = verify_trust_bundle(trust_token, anchor, now=now_dt)
    view = verify_status_list(list_token, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=LIST_URI,
                              now=now_dt)
    lists = StatusLists({7: view})
    assert result["size"] == view.size == 4096
    js = {item["name"]: item["verdict"] for item in result["out"]}
    for case in cases:
        expected = verify(case["qr_text"], trust, lists, datetime.fromtimestamp(case["now"], UTC))
        got = js[case["name"]]
        assert (got["ok"], got["reason"]) == (expected.ok, expected.reason), case["name"]
        assert got["statusChecked"] == expected.status_checked, case["name"]
        assert got["payloadHash"] == expected.payload_hash
        if expected.claims is None:
            assert got["claims"] is None, case["name"]
        else:
            assert got["claims"] == _claims_json(expected.claims), case["name"]
    expected_reasons = {"valid_ed": None, "retired_key_es": None, "revoked": "revoked", "suspended": "suspended",
                        "superseded": "superseded", "compromised": "key_retired", "index_outside": "malformed",
                        "edge_before_start": "not_yet_valid", "edge_start_with_skew": None, "edge_last_moment": None,
                        "edge_after_end": "expired"}
    assert {name: js[name]["reason"] for name in expected_reasons} == expected_reasons
    # No status list for the card: fail closed as "revoked" without a status check, or accept with a warning.
    assert (result["missing"]["reason"], result["missing"]["statusChecked"]) == ("revoked", False)
    assert (result["accepted"]["ok"], result["accepted"]["statusChecked"]) == (True, False)
    for name, outcome in result["refusals"].items():
        assert outcome.startswith("untrusted"), (name, outcome)
    assert "larger than allowed" in result["bomb"]
    screenshot(page, "checkin-js-selftest")


def test_status_list_tokens_are_judged_alike(page: webdriver.Chrome) -> None:
    """docs/card-format.md §6.4: the same status-list tokens are accepted or refused in JavaScript and in Python."""
    anchor_signer = LocalSigner(b"\xa1\x02", ALG_EDDSA, generate_private_key("ed25519"))
    now = int(datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp())
    ttl = 3600
    compressed = compress_status_bytes(build_status_bytes(4096, [(5, 1)]))
    # The same list compressed less, to a length that base64 pads.
    padded = zlib.compress(build_status_bytes(4096, [(5, 1)]), 1)
    assert len(padded) % 3

    def token(lst: bytes | str = compressed, **changes: Any) -> str:
        encoded = lst if isinstance(lst, str) else base64.urlsafe_b64encode(lst).rstrip(b"=").decode()
        claims = {"sub": LIST_URI, "iat": now, "exp": now + 2 * ttl, "ttl": ttl,
                  "status_list": {"bits": 2, "lst": encoded}, **changes}
        return sign_jwt(anchor_signer, {k: v for k, v in claims.items() if v is not None}, typ=STATUS_LIST_TYP)

    tokens = {
        "good": token(),
        "issued_600_seconds_ahead": token(iat=now + 600, exp=now + 600 + 2 * ttl),
        "issued_601_seconds_ahead": token(iat=now + 601, exp=now + 601 + 2 * ttl),
        "expired": token(iat=now - 2 * ttl - 1, exp=now - 1),
        "exp_not_iat_plus_2ttl": token(exp=now + ttl),
        "no_ttl": token(ttl=None),
        "ttl_zero": token(ttl=0, exp=now),
        "ttl_text": token(ttl="3600"),
        "iat_fraction": token(iat=now + 0.5),
        "other_subject": token(sub=LIST_URI + "0"),
        "bits_1": token(status_list={"bits": 1, "lst": base64.urlsafe_b64encode(compressed).decode().rstrip("=")}),
        "lst_padded": token(base64.urlsafe_b64encode(padded).decode()),
        "lst_not_base64url": token("AAAA+/AA"),
        "zlib_truncated": token(compressed[:-4]),
        "zlib_then_more": token(compressed + b"\x00"),
        "not_zlib": token(zlib.compress(b"")[2:]),
        "larger_than_allowed": token(zlib.compress(bytes(2**22 + 1))),
        "exactly_the_cap": token(zlib.compress(bytes(2**22))),
        "wrong_typ": sign_jwt(anchor_signer, {"sub": LIST_URI, "iat": now, "exp": now + 2 * ttl, "ttl": ttl,
                                              "status_list": {"bits": 2, "lst": "eJwDAAAAAAE"}}, typ="JWT"),
    }
    anchor_jwk = public_jwk(anchor_signer.kid, anchor_signer.algorithm, anchor_signer.private_key.public_key())
    javascript = _run(page, RUN_STATUS_TOKENS, {"anchor": anchor_jwk, "tokens": tokens, "uri": LIST_URI, "now": now})
    anchor = TrustAnchor.from_jwk(anchor_jwk)
    python = {}
    for name, text in tokens.items():
        try:
            verify_status_list(text, algorithm=anchor.algorithm, key=anchor.key, kid=anchor.kid, uri=LIST_URI,
                               now=datetime.fromtimestamp(now, UTC))
            python[name] = "accepted"
        except TrustError as exc:
            python[name] = f"untrusted: {exc}"
    accepted = {"good", "issued_600_seconds_ahead", "exactly_the_cap"}
    assert {name for name, outcome in javascript.items() if outcome == "accepted"} == accepted, javascript
    assert {name for name, outcome in python.items() if outcome == "accepted"} == accepted, python
    assert all(outcome.startswith("untrusted") for outcome in javascript.values() if outcome != "accepted")


RUN_ANCHOR_TOKENS = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
(async () => {
  const anchor = await V.importJwk(input.anchor);
  const check = {
    trust_bundle: (token) => V.verifyTrustBundle(token, anchor, input.now),
    status_list: (token) => V.verifyStatusList(token, anchor, input.uri, input.now),
    event_bundle: (token) => V.verifyEventBundle(token, anchor, input.now),
  };
  const out = {};
  for (const [name, {kind, token}] of Object.entries(input.tokens)) {
    try { await check[kind](token); out[name] = "accepted"; } catch (e) { out[name] = e.reason + ": " + e.message; }
  }
  return out;
})().then(done, (e) => done({error: String(e && e.stack || e)}));
"""


def test_anchor_signed_tokens_are_judged_alike(page: webdriver.Chrome) -> None:
    """The trust bundle, a status list and the event bundle pass one anchor check in JavaScript as in Python
    (tests/verification/test_anchor_tokens.py): the event bundle, too, is refused when issued in the future."""
    tokens: dict[str, dict[str, str]] = {}
    python: dict[str, str] = {}
    for kind in anchor_tokens.KINDS:
        other = LocalSigner(anchor_tokens.TRUST.kid, ALG_EDDSA, generate_private_key("ed25519"))
        for label, signer, iat, typ in (
            ("good", anchor_tokens.TRUST, anchor_tokens.STAMP, kind.typ),
            ("issued_600_seconds_ahead", anchor_tokens.TRUST, anchor_tokens.STAMP + 600, kind.typ),
            ("issued_601_seconds_ahead", anchor_tokens.TRUST, anchor_tokens.STAMP + 601, kind.typ),
            ("expired", anchor_tokens.TRUST, anchor_tokens.STAMP - 8 * 86400, kind.typ),
            ("wrong_typ", anchor_tokens.TRUST, anchor_tokens.STAMP, "JWT"),
            ("other_signer", other, anchor_tokens.STAMP, kind.typ),
        ):
            name = f"{kind.name}/{label}"
            tokens[name] = {"kind": kind.name, "token": sign_jwt(signer, kind.claims(iat), typ=typ)}
            try:
                kind.verify(tokens[name]["token"], anchor_tokens.NOW)
                python[name] = "accepted"
            except TrustError:
                python[name] = "refused"
    anchor_jwk = public_jwk(anchor_tokens.TRUST.kid, anchor_tokens.TRUST.algorithm,
                            anchor_tokens.TRUST.private_key.public_key())
    javascript = _run(page, RUN_ANCHOR_TOKENS, {"anchor": anchor_jwk, "tokens": tokens, "uri": anchor_tokens.URI,
                                                "now": anchor_tokens.STAMP})
    accepted = {name for name in tokens if name.endswith(("/good", "/issued_600_seconds_ahead"))}
    assert {name for name, outcome in python.items() if outcome == "accepted"} == accepted, python
    assert {name for name, outcome in javascript.items() if outcome == "accepted"} == accepted, javascript
    assert all(outcome.startswith("untrusted") for outcome in javascript.values() if outcome != "accepted")
    assert "issued in the future" in javascript["event_bundle/issued_601_seconds_ahead"]


RUN_ENTRY_RULES = """
const [input, done] = arguments;
const V = window.cardsvcVerify;
const seconds = (text) => Date.parse(text) / 1000;
const out = {};
for (const c of input.cases) {
  const prior = c.prior_entries.map((entry) => ({...entry, at: seconds(entry.at)}));
  const live = {live: true, printed: false}[c.card] ?? null;
  const decision = V.decideEntry(V.entryRulesOf(c.rules), prior, seconds(c.at), c.eligible, live);
  out[c.name] = {ok: decision.ok, reason: decision.reason, direction: decision.direction, first: decision.first,
    idCheck: decision.idCheck};
}
done(out);
"""


def test_entry_rule_vectors(page: webdriver.Chrome) -> None:
    """tests/vectors/entry-rules.json in JavaScript (decideEntry), as tests/verification/test_entry.py runs them
    through verification.entry.decide_entry."""
    result = _run(page, RUN_ENTRY_RULES, {"cases": entry_vectors.CASES})
    assert set(result) == {case["name"] for case in entry_vectors.CASES}
    for case in entry_vectors.CASES:
        expected, got = case["decision"], result[case["name"]]
        first = expected["first"] and {**expected["first"],
                                       "at": datetime.fromisoformat(expected["first"]["at"]).timestamp()}
        assert got == {"ok": expected["reason"] is None, "reason": expected["reason"],
                       "direction": expected["direction"], "first": first, "idCheck": expected["id_check"]
                       }, case["note"]


LIVE: dict[str, Any] = json.loads(make_live_vectors.LIVE_PATH.read_text(encoding="utf-8"))


def test_live_code_vectors(page: webdriver.Chrome) -> None:
    """tests/vectors/card-v2-live.json through live.js (via verify()): the reasons, the claims shown, live codes
    marked live; the golden live codes verify at their time step."""
    golden = [{"name": g["name"], "input": {"qr_text": g["qr_text"]}, "trust": {g["card_kid"]: "active"},
               "status_lists": {str(g["claims"]["status_list"]): {"size": 65536, "entries": {}}}, "now": g["now"],
               "reason": None, "shows_claims": True} for g in LIVE["golden"]]
    vectors = LIVE["vectors"] + LIVE["accepted"] + golden
    verdicts = _run_vectors(page, LIVE["keys"], vectors)
    for vector in vectors:
        scanned = vector["input"].get("qr_text", "")
        assert verdicts[vector["name"]]["live"] is ("8402" in scanned[:20]), vector["name"]


RUN_SCAN_KEYS = """
const [texts, done] = arguments;
done(texts.map((text) => window.cardsvcLive.scanKey(text)));
"""


def test_a_live_code_in_view_is_one_scan(page: webdriver.Chrome) -> None:
    """The check-in page's de-duplication key (live.js scanKey): a live code changes every 30 seconds while its card
    stays in front of the camera, so every step of one card is one key; another card, or any other text, is its own
    key."""
    signer = make_vectors.fixed_signers()[ALG_EDDSA]
    claims = make_live_vectors.bound_claims()
    phones = [Ed25519PrivateKey.generate() for _ in range(2)]
    credentials = [sign_bound_credential(claims, holder_key_of(phone), signer) for phone in phones]
    texts = [live_qr_text(credentials[0], claims.card_id, step, phones[0]) for step in (58_000_000, 58_000_001)]
    other_card = make_live_vectors.bound_claims(replace(claims, card_id=bytes(8)))
    texts.append(live_qr_text(sign_bound_credential(other_card, holder_key_of(phones[1]), signer), other_card.card_id,
                              58_000_000, phones[1]))
    printed = VECTORS["vectors"][0]["qr_text"]
    keys = _run(page, RUN_SCAN_KEYS, [*texts, printed, "8402" + "9" * 40])
    assert keys[0] == keys[1] == f"live:{claims.card_id.hex()}" and texts[0] != texts[1]
    assert keys[2] == f"live:{bytes(8).hex()}"
    assert keys[3:] == [printed, "8402" + "9" * 40]  # a printed card, and a live prefix that does not parse
