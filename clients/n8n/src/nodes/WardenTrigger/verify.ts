// Standard Webhooks verification of Warden's notifications: HMAC-SHA256 of
// "id.timestamp.body" keyed by the bytes of the `whsec_<base64>` secret, any of the
// space-separated `v1,<base64>` signatures, and a timestamp within the tolerance (replays of
// an old delivery are refused).

import { createHmac, timingSafeEqual } from "node:crypto";

/** Why a delivery was refused, or `null` when it is genuine. */
export function verify(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string,
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): string | null {
  const h = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = h("webhook-id");
  const ts = h("webhook-timestamp");
  const sigs = h("webhook-signature");
  if (!id || !ts || !sigs) return "missing webhook-id, webhook-timestamp or webhook-signature";
  const timestamp = Number(ts);
  if (!Number.isInteger(timestamp)) return "webhook-timestamp is not a number";
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return "webhook-timestamp outside the tolerance";
  if (!secret.startsWith("whsec_")) return "the signing secret is not a whsec_ secret";
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${rawBody}`).digest();
  for (const sig of sigs.split(" ")) {
    const [version, value] = sig.split(",", 2);
    if (version !== "v1" || !value) continue;
    const got = Buffer.from(value, "base64");
    if (got.length === expected.length && timingSafeEqual(got, expected)) return null;
  }
  return "no signature matches";
}
