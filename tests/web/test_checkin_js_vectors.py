"""The check-in page's JavaScript verifier (cardsvc/web/checkin/static/verify.js), run in headless Chromium.

1. The golden vectors (tests/vectors/card-v1.json): every positive vector verifies with the same claims (from its QR
   text and from its raw bytes), every negative vector gets its reason code (unknown_key through a trust set that
   lacks the kid).
2. Parity with the Python reference: a trust bundle and a status list signed in Python, cards in every status and at
   every validity edge, and the JS verdict must equal :func:`verification.verify.verify`'s.
3. The anchor-signed documents are refused when tampered with or signed by another key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from issuance.credential import sign_credential
from issuance.jws import sign_jwt
from issuance.keys import LocalSigner, generate_private_key
from issuance.status_list import build_status_bytes, compress_status_bytes, status_list_jwt
from tests.vectors import make_vectors
from tests.web.harness import LiveServer, chromium, live_server, screenshot
from verification.crypto import public_jwk
from verification.format import ALG_EDDSA, ALG_ES256, CardClaims, day_start, to_qr_text
from verification.status import verify_status_list
from verification.trust import TRUST_BUNDLE_TYP, TrustAnchor, verify_trust_bundle
from verification.verify import StatusLists, verify

VECTORS: dict[str, Any] = json.loads(make_vectors.VECTORS_PATH.read_text(encoding="utf-8"))
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
  const out = {positive: [], negative: []};
  for (const v of input.positive) {
    const fromText = await V.verify(v.qr_text, trust, allValid, v.now);
    const fromBytes = await V.verify(V.fromHex(v.credential), trust, allValid, v.now);
    out.positive.push({name: v.name, text: fromText, bytes: fromBytes, digits: V.toQrText(V.fromHex(v.credential))});
  }
  for (const v of input.negative) {
    const scanned = v.qr_text !== undefined ? v.qr_text : V.fromHex(v.credential);
    out.negative.push({name: v.name, verdict: await V.verify(scanned, trust, allValid, input.now)});
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
    result = _run(page, RUN_VECTORS, {"jwks": unique_jwks, "positive": positive, "negative": VECTORS["negative"],
                                      "now": VECTORS["vectors"][0]["cwt"]["iat"] + 3600})
    by_name = {v["name"]: v for v in VECTORS["vectors"]}
    assert len(result["positive"]) == len(VECTORS["vectors"])
    for item in result["positive"]:
        vector = by_name[item["name"]]
        expected = {k: v for k, v in vector["claims"].items() if k != "display_name_utf8_bytes"}
        for verdict in (item["text"], item["bytes"]):
            assert verdict["ok"] is True and verdict["reason"] is None, (item["name"], verdict)
            assert verdict["claims"] == expected, item["name"]
            assert verdict["kid"] == vector["kid"]
            assert verdict["statusChecked"] is True
        assert item["digits"] == vector["qr_text"]
    negatives = {item["name"]: item["verdict"] for item in result["negative"]}
    assert set(negatives) == {v["name"] for v in VECTORS["negative"]}
    for vector in VECTORS["negative"]:
        verdict = negatives[vector["name"]]
        assert verdict["ok"] is False
        assert verdict["reason"] == vector["reason"], vector["name"]
        assert verdict["claims"] is None, vector["name"]  # nothing is shown for a card whose signature failed


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
