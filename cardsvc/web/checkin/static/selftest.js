// Exposes the verifier to browser tests (tests/web/test_checkin_js_vectors.py) on a page with no app state.
import * as verifier from "./verify.js";

window.cardsvcVerify = verifier;
document.getElementById("status").textContent = "ready";
document.body.dataset.ready = "1";
