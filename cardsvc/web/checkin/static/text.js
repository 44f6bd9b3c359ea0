// What the steward reads: Vietnamese, in words a steward uses, never a reason code, an error name or an English
// message (issue #15 §4). Times are Vietnam time (UTC+7) whatever the phone's own time zone.
import { VIETNAM_OFFSET } from "./verify.js";

const LABELS = {
  ok_in: "HỢP LỆ – MỜI VÀO",
  ok_out: "HỢP LỆ – RA",
  malformed: "Mã không hợp lệ – không phải thẻ hội viên",
  unsupported_version: "Thẻ đời mới, máy chưa đọc được – nhờ cán bộ kiểm tra",
  unknown_key: "Thẻ không do Hội phát hành",
  bad_signature: "Chữ ký sai – thẻ có thể bị giả",
  not_yet_valid: "Thẻ chưa có hiệu lực",
  expired: "Thẻ đã hết hạn",
  revoked: "Thẻ đã bị thu hồi",
  suspended: "Thẻ đang bị tạm đình chỉ",
  superseded: "Thẻ cũ – đã được thay bằng thẻ mới",
  key_retired: "Thẻ thuộc đợt phát hành đã bị thu hồi",
  holder_proof_invalid: "Bản sao thẻ điện tử – cần mã động trên điện thoại chủ thẻ",
  stale_live_code: "Mã động đã cũ – ảnh chụp hoặc đồng hồ sai",
  live_code_required: "Sự kiện chỉ nhận thẻ động trên điện thoại",
  not_eligible: "Không có trong danh sách sự kiện",
  already_checked_in: "ĐÃ VÀO RỒI",
  outside_window: "Ngoài giờ điểm danh",
  event_closed: "Sự kiện đã đóng",
  no_bundle: "Máy chưa có dữ liệu sự kiện",
  not_provisioned: "Trạm chưa được thiết lập",
  server_unreachable: "Chưa kiểm tra được thẻ",
  refused_by_server: "Máy chủ không nhận lượt quét này",
};

/** The headline of a verdict: accepted (in or out) or the reason of a refusal, in Vietnamese. */
export function verdictTitle(ok, reason, direction) {
  if (ok) return direction === "out" ? LABELS.ok_out : LABELS.ok_in;
  return LABELS[reason] || "Không được vào";
}

/** A shorter form for the history list and notices. */
export function verdictShort(ok, reason) {
  if (ok) return "hợp lệ";
  if (reason === "already_checked_in") return "đã vào trước đó";
  return (LABELS[reason] || "không được vào").toLowerCase();
}

/** Which kind of card was let in (docs/card-format.md §8): a live code on the member's phone or a printed card (or
 * static code); at a live_preferred event a printed card is compared with an identity document. */
export function cardKind(live, idCheck) {
  if (idCheck) return "Thẻ in — đối chiếu giấy tờ tùy thân";
  return live ? "Thẻ động trên điện thoại" : "Thẻ in / mã tĩnh";
}

const pad = (value) => String(value).padStart(2, "0");

function vietnam(seconds) {
  return new Date((seconds + VIETNAM_OFFSET) * 1000);
}

/** "08:05" in Vietnam time. */
export function vnTime(seconds) {
  const at = vietnam(seconds);
  return `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}`;
}

/** "12/03/2026 08:05" in Vietnam time: the officer pages' format. */
export function vnDateTime(seconds) {
  const at = vietnam(seconds);
  return `${pad(at.getUTCDate())}/${pad(at.getUTCMonth() + 1)}/${at.getUTCFullYear()} ${vnTime(seconds)}`;
}

/** The check-in window as the officer's event page writes it. */
export function checkinWindow(opensAt, closesAt) {
  return `Giờ điểm danh: ${vnDateTime(opensAt)} – ${vnDateTime(closesAt)} (giờ Việt Nam, UTC+7)`;
}

/** Where and when a member first entered: "Đã vào lúc 08:05 tại Cửa chính (trạm này)". */
export function firstEntry(first, ownStationId, ownStationName) {
  let where = first.stationName ? `tại ${first.stationName}` : "tại một cửa khác";
  if (first.stationId !== null && first.stationId === ownStationId) {
    where = ownStationName ? `tại ${ownStationName} (trạm này)` : "tại trạm này";
  }
  return `Đã vào lúc ${vnTime(first.at)} ${where}`;
}

/** The line under a verdict that says where it stands with the server; a refusal never reads as "recorded". */
export function syncText(sync, ok) {
  switch (sync) {
    case "pending":
      return "Máy đã tự kiểm tra · đang đối chiếu với máy chủ…";
    case "synced":
      return ok ? "Đã ghi nhận trên máy chủ" : "Máy chủ xác nhận kết quả này";
    case "queued":
      return "Chưa đồng bộ – máy sẽ tự gửi khi có mạng";
    case "server":
      return ok ? "Đã ghi nhận trên máy chủ" : "Kết quả do máy chủ kiểm tra";
    case "changed":
      return "Máy chủ đã sửa kết quả của máy này";
    default:
      return "Kiểm tra tại máy";
  }
}

export const NET_TEXT = {
  unknown: "Đang kiểm tra kết nối…",
  online: "Trực tuyến",
  offline: "Mất mạng",
  unreachable: "Không liên lạc được máy chủ",
};

export const READY_TEXT = {
  camera: "Sẵn sàng quét",
  photo: "Camera trực tiếp không dùng được – bấm “Chụp ảnh mã QR”",
  setup: "Trạm chưa được thiết lập",
};

// What to do when the page cannot use the camera (a title, then steps). "insecure": a phone only lets a page use
// the camera over https:// (or on the machine itself).
export const CAMERA_HELP = {
  insecure: {
    title: "Trang đang mở bằng http:// (không bảo mật) nên điện thoại không cho dùng camera trực tiếp.",
    steps: [
      "Cách nhanh: bấm nút “Chụp ảnh mã QR” bên dưới, chụp mã trên thẻ; trang tự đọc mã trong ảnh và hỏi máy chủ.",
      "Để quét liên tục và dùng được cả khi mất mạng: xin cán bộ đường dẫn thiết lập bắt đầu bằng https:// "
        + "rồi mở lại trên máy này.",
      "Khi mở bằng http://, máy không tự kiểm tra được thẻ lúc mất mạng.",
    ],
  },
  denied: {
    title: "Trang chưa được phép dùng camera.",
    steps: [
      "Android (Chrome): chạm biểu tượng ngay bên trái địa chỉ trang → Quyền (hoặc Cài đặt trang web) → Camera "
        + "→ Cho phép, rồi tải lại trang.",
      "iPhone (Safari): chạm nút “aA” bên trái địa chỉ trang → Cài đặt trang web → Camera → Cho phép, rồi tải "
        + "lại trang. Nếu không thấy: Cài đặt → Safari → Camera → Cho phép.",
      "Trong lúc chờ: dùng nút “Chụp ảnh mã QR” hoặc ô tìm hội viên bên dưới.",
    ],
  },
  missing: {
    title: "Không tìm thấy camera trên máy này.",
    steps: ["Dùng nút “Chụp ảnh mã QR”, hoặc dùng một điện thoại khác làm trạm."],
  },
  busy: {
    title: "Camera đang bị ứng dụng khác dùng.",
    steps: ["Đóng ứng dụng đang dùng camera (gọi video, chụp ảnh) rồi tải lại trang."],
  },
  failed: {
    title: "Không mở được camera.",
    steps: ["Tải lại trang. Nếu vẫn không được: dùng nút “Chụp ảnh mã QR” hoặc ô tìm hội viên bên dưới."],
  },
};

/** Why the phone could not be set up, from the server's error code. */
export function provisionProblem(code) {
  if (code === "invalid_provisioning_code") {
    return "Mã thiết lập không đúng, đã được dùng hoặc đã hết hạn. Xin cán bộ tạo mã thiết lập mới.";
  }
  return "Máy chủ không thiết lập được trạm này. Xin cán bộ tạo mã thiết lập mới rồi thử lại.";
}

export const MESSAGES = {
  provisioning: "Đang thiết lập trạm…",
  provisionOffline: "Không kết nối được máy chủ để thiết lập. Kiểm tra wifi hoặc 4G rồi mở lại đường dẫn thiết lập.",
  deviceRevoked: "Trạm đã bị thu hồi hoặc hết quyền. Xin cán bộ mã thiết lập mới; các lượt quét chưa gửi vẫn được "
    + "giữ trên máy.",
  bundleInvalid: "Dữ liệu sự kiện tải về không đúng chữ ký nên không được dùng. Báo cán bộ; trong lúc đó máy hỏi "
    + "máy chủ cho từng lượt quét.",
  bundleExpired: "Dữ liệu sự kiện trên máy đã hết hạn. Cần mạng để tải lại.",
  storedUnusable: "Dữ liệu đã lưu trên máy không dùng được. Hãy thiết lập lại trạm bằng mã mới.",
  scanFailed: "Có lỗi khi xử lý lượt quét. Hãy quét lại; nếu vẫn lỗi, tải lại trang.",
  noServerNoData: "Máy chưa có dữ liệu sự kiện và không liên lạc được máy chủ. Quét lại khi có mạng, hoặc nhờ cán bộ "
    + "điểm danh thủ công.",
  photoReading: "Đang đọc mã trong ảnh…",
  photoNoCode: "Không thấy mã QR trong ảnh. Chụp lại: mã nằm giữa ảnh, đủ sáng, không bị lóa, không bị nghiêng nhiều.",
  photoUnreadable: "Không mở được ảnh này. Chụp lại bằng camera của máy.",
  searchNeedsData: "Tra cứu cần dữ liệu sự kiện trên máy (chỉ có khi trang mở bằng https://).",
};
