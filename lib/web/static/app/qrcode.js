// QR codes on a canvas, from the `qr` npm package's encoder (served under /web/app/vendor).
import encodeQR from "./vendor/qr.mjs";

/** Draws `text` as a QR code (error correction "medium", 4-module quiet zone) on `canvas`. */
export function drawQr(canvas, text, moduleSize = 5) {
  const grid = encodeQR(text, "raw", { ecc: "medium", border: 4 });
  const n = grid.length;
  canvas.width = n * moduleSize;
  canvas.height = n * moduleSize;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#000";
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      if (grid[y][x]) ctx.fillRect(x * moduleSize, y * moduleSize, moduleSize, moduleSize);
    }
  }
}
