import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { armor, Decrypter, Encrypter } from "age-encryption";

/**
 * SOPS files as sops 3.x writes them, for the tests: written from the published format (getsops/sops
 * aes/cipher.go, sops.go's MAC, stores/yaml, age/keysource.go) with node:crypto and age-encryption,
 * and deliberately sharing no code with src/secrets/sops.ts, so a misreading of the format in one is
 * not repeated by the other. Checked once against a file written by the real sops 3.8.1 (same data
 * key and IVs give the same ciphertexts and MAC byte for byte).
 */

export type SopsType = "str" | "int" | "float" | "bool";

/** One value as sops encrypts it: AES-256-GCM, 32-byte IV, the path as additional data. */
export function sopsValue(
  key: Buffer,
  aad: string,
  type: SopsType,
  plain: string,
  iv = randomBytes(32),
): string {
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(Buffer.from(aad));
  const data = Buffer.concat([c.update(plain, "utf8"), c.final()]);
  return `ENC[AES256_GCM,data:${data.toString("base64")},iv:${iv.toString("base64")},tag:${c.getAuthTag().toString("base64")},type:${type}]`;
}

/** The plaintext of one ENC[...] value (throws when the key or the additional data is wrong). */
export function openSopsValue(key: Buffer, aad: string, value: string): string {
  const m = /data:([^,]*),iv:([^,]+),tag:([^,]+),type:/.exec(value);
  if (!m) throw new Error(`not a sops value: ${value}`);
  const d = createDecipheriv("aes-256-gcm", key, Buffer.from(m[2], "base64"));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(Buffer.from(m[3], "base64"));
  return Buffer.concat([d.update(Buffer.from(m[1], "base64")), d.final()]).toString("utf8");
}

/** The data key of a SOPS file's `sops.age[].enc` entry. */
export async function openDataKey(enc: string, identity: string): Promise<Buffer> {
  const d = new Decrypter();
  d.addIdentity(identity);
  return Buffer.from(await d.decrypt(armor.decode(enc), "uint8array"));
}

export interface Values {
  /** An encrypted value at `path` (its keys, list indexes left out, as sops does). */
  enc(path: string, type: SopsType, plain: string): string;
  /** A value sops leaves in clear (an `_unencrypted` key, an empty string), still under the MAC. */
  clear(plain: string): string;
}

const indent = (text: string, n: number) =>
  text
    .trimEnd()
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");

/**
 * A SOPS YAML file in the layout of sops 3.8 (2-space indent, empty lists for the other key
 * services): `body` lays out the values in document order, since the MAC follows that order.
 */
export async function sopsFile(
  recipients: string[],
  body: (v: Values) => string,
  lastmodified = "2024-03-25T22:08:10Z",
): Promise<string> {
  const key = randomBytes(32);
  const hash = createHash("sha512");
  const text = body({
    enc(path, type, plain) {
      hash.update(plain);
      return sopsValue(key, `${path.split(".").join(":")}:`, type, plain);
    },
    clear(plain) {
      hash.update(plain);
      return plain;
    },
  });
  const age: string[] = [];
  for (const r of recipients) {
    const e = new Encrypter();
    e.addRecipient(r);
    age.push(`    - recipient: ${r}\n      enc: |\n${indent(armor.encode(await e.encrypt(key)), 8)}`);
  }
  const mac = sopsValue(key, lastmodified, "str", hash.digest("hex").toUpperCase());
  return `${text.trimEnd()}
sops:
  kms: []
  gcp_kms: []
  azure_kv: []
  hc_vault: []
  age:
${age.join("\n")}
  lastmodified: "${lastmodified}"
  mac: ${mac}
  pgp: []
  unencrypted_suffix: _unencrypted
  version: 3.8.1
`;
}
