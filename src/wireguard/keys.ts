import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

/**
 * WireGuard keys are raw 32-byte X25519 keys in standard base64, exactly what `wg genkey` / `wg pubkey` print.
 * Node exposes raw X25519 keys only through JWK (base64url), so we convert between the two encodings.
 */

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

export function isWireGuardKey(text: string): boolean {
  return KEY_RE.test(text);
}

const b64urlToB64 = (s: string) => Buffer.from(s, "base64url").toString("base64");
const b64ToB64url = (s: string) => Buffer.from(s, "base64").toString("base64url");

export function generatePrivateKey(): string {
  const { privateKey } = generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  return b64urlToB64(jwk.d!);
}

/** Derives the public key; throws if `privateKey` is not a 32-byte base64 key. */
export function publicKeyOf(privateKey: string): string {
  const trimmed = privateKey.trim();
  if (!isWireGuardKey(trimmed)) throw new Error("not a WireGuard key: expected 44 characters of base64");
  // `wg pubkey` clamps the scalar; X25519 does the same internally, so any 32 bytes give the same result.
  const key = createPrivateKey({
    key: { kty: "OKP", crv: "X25519", d: b64ToB64url(trimmed), x: "" },
    format: "jwk",
  });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  return b64urlToB64(jwk.x!);
}
