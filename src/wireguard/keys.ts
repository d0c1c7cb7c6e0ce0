import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

/**
 * WireGuard keys are raw 32-byte X25519 keys in standard base64, exactly what `wg genkey` / `wg pubkey` print.
 * Node takes raw X25519 keys only wrapped: we use DER (PKCS#8 for private, SPKI for public keys), whose
 * fixed prefixes every Node version accepts (a JWK without its public half is refused since Node 24).
 */

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** PKCS#8 PrivateKeyInfo for X25519 (OID 1.3.101.110) up to the 32 key bytes (RFC 8410). */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
/** SubjectPublicKeyInfo for X25519 up to the 32 key bytes. */
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export function isWireGuardKey(text: string): boolean {
  return KEY_RE.test(text);
}

/** The raw key at the end of a DER structure whose prefix we know. */
function rawKey(der: Buffer, prefix: Buffer): string {
  if (der.length !== prefix.length + 32 || !der.subarray(0, prefix.length).equals(prefix))
    throw new Error("unexpected X25519 DER layout from node:crypto");
  return der.subarray(prefix.length).toString("base64");
}

export function generatePrivateKey(): string {
  // OpenSSL clamps the scalar at generation, as `wg genkey` does.
  const { privateKey } = generateKeyPairSync("x25519");
  return rawKey(privateKey.export({ format: "der", type: "pkcs8" }), PKCS8_PREFIX);
}

/** Derives the public key; throws if `privateKey` is not a 32-byte base64 key. */
export function publicKeyOf(privateKey: string): string {
  const trimmed = privateKey.trim();
  if (!isWireGuardKey(trimmed)) throw new Error("not a WireGuard key: expected 44 characters of base64");
  // `wg pubkey` clamps the scalar; X25519 does the same internally, so any 32 bytes give the same result.
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, Buffer.from(trimmed, "base64")]),
    format: "der",
    type: "pkcs8",
  });
  return rawKey(createPublicKey(key).export({ format: "der", type: "spki" }), SPKI_PREFIX);
}
