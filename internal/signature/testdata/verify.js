"use strict";
// The Node.js verifier from docs/verifying-signatures.md, plus a harness for
// walhook's tests: it reads {secret, headers, body_base64, now} as JSON on
// stdin, prints "ok" and exits 0 when the request verifies, and otherwise
// prints the reason on stderr and exits 1.

const crypto = require("node:crypto");

// verifyWebhook checks the Standard Webhooks headers of a request sent by
// walhook. headers uses lower-case names (as req.headers does), body is the
// raw request body as a Buffer. Throws if the request must be rejected.
function verifyWebhook(secret, headers, body, nowSeconds = Math.floor(Date.now() / 1000)) {
  const toleranceSeconds = 5 * 60;
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) {
    throw new Error("missing webhook-id, webhook-timestamp or webhook-signature header");
  }

  // Reject replays and future-dated requests. The timestamp is part of the
  // signed content, so it cannot be changed without breaking the signature.
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) {
    throw new Error("webhook-timestamp is invalid or outside the 5 minute tolerance");
  }

  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const expected = Buffer.from(
    "v1," + crypto.createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest("base64"),
  );

  // While a secret is being rotated the header carries one signature per
  // secret, separated by spaces: any one matching is enough.
  for (const signature of signatures.split(" ")) {
    const given = Buffer.from(signature);
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) {
      return;
    }
  }
  throw new Error("no matching webhook signature");
}

module.exports = { verifyWebhook };

if (require.main === module) {
  const chunks = [];
  process.stdin.on("data", (chunk) => chunks.push(chunk));
  process.stdin.on("end", () => {
    const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    try {
      verifyWebhook(req.secret, req.headers, Buffer.from(req.body_base64, "base64"), req.now);
      console.log("ok");
    } catch (err) {
      console.error(`rejected: ${err.message}`);
      process.exitCode = 1;
    }
  });
}
