// Exposes the verifier to browser tests (tests/web/test_checkin_js_vectors.py) on a page with no app state.
import * as verifier from "./verify.js";
import * as live from "./live.js";

window.cardsvcVerify = verifier;
window.cardsvcLive = live;
document.getElementById("status").textContent = "ready";
document.body.dataset.ready = "1";
