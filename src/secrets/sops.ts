import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { armor, Decrypter, Encrypter } from "age-encryption";
import { Document, parse, Scalar } from "yaml";
import { OperationError } from "../util/errors.js";

/**
 * SOPS files (getsops/sops, its YAML store) with age recipients, read and written natively: no sops
 * binary. The format, as sops 3.x writes it:
 * - a random 32-byte data key, encrypted to each age recipient as its own armored age file
 *   (`sops.age[].recipient` / `.enc`);
 * - every value encrypted with AES-256-GCM under the data key, with a fresh 32-byte IV and, as
 *   additional data, the keys of its path each followed by ":" (list items share their list's path):
 *   `ENC[AES256_GCM,data:…,iv:…,tag:…,type:str|int|float|bool]` (base64); keys stay readable;
 * - `sops.mac`: SHA-512 over the plaintext values in document order (upper-case hex), encrypted the
 *   same way with `sops.lastmodified` as additional data, so no value can be changed, swapped or
 *   removed, and the date not moved, without the data key.
 * Values under a key ending with `unencrypted_suffix` (or matching the other rules sops may record)
 * stay in clear and are still covered by the MAC, as sops does.
 */

/** The sops release whose format this follows (and which we record in `sops.version`). */
export const SOPS_VERSION = "3.13.2";
const DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted";
const IV_BYTES = 32;
const TAG_BYTES = 16;
/** sops' prefix for a MAC over encrypted values only (`mac_only_encrypted`): SHA-256 of "sops". */
const MAC_ONLY_ENCRYPTED_INIT = createHash("sha256").update("sops").digest();
const ENC =
  /^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:(\w+)\]$/;

type Leaf = string | number | boolean;
type Tree = Map<unknown, unknown> | Record<string, unknown>;

const fail = (source: string, what: string) => new OperationError(`${source}: ${what}`);

/** Which values sops encrypts: the one rule its metadata records (unencrypted_suffix by default). */
interface Rules {
  encrypted(path: readonly string[]): boolean;
  macOnlyEncrypted: boolean;
}

function rulesOf(meta: Record<string, unknown>, source: string): Rules {
  for (const k of ["encrypted_comment_regex", "unencrypted_comment_regex"])
    if (meta[k]) throw fail(source, `sops.${k} is not supported: re-encrypt the file without it`);
  const str = (k: string) =>
    typeof meta[k] === "string" && meta[k] !== "" ? (meta[k] as string) : undefined;
  const set = ["unencrypted_suffix", "encrypted_suffix", "unencrypted_regex", "encrypted_regex"].filter(str);
  if (set.length > 1) throw fail(source, `sops metadata has more than one of ${set.join(", ")}`);
  const rule = set[0] ?? "unencrypted_suffix";
  const value = str(rule) ?? DEFAULT_UNENCRYPTED_SUFFIX;
  // Like sops: one path element decides, suffixes by string end, regexes unanchored.
  let match: (key: string) => boolean;
  try {
    match = rule.endsWith("suffix")
      ? (k) => k.endsWith(value)
      : (
          (re) => (k) =>
            re.test(k)
        )(new RegExp(value));
  } catch {
    throw fail(source, `sops.${rule} is not a regular expression we can use: ${value}`);
  }
  const wantsMatch = rule.startsWith("encrypted");
  return {
    encrypted: (path) => path.some(match) === wantsMatch,
    macOnlyEncrypted: meta.mac_only_encrypted === true,
  };
}

/** The bytes sops hashes and encrypts for a value (Go's formatting: booleans are True/False). */
function typed(value: Leaf): { type: string; bytes: Buffer } {
  if (typeof value === "boolean") return { type: "bool", bytes: Buffer.from(value ? "True" : "False") };
  if (typeof value === "number")
    return { type: Number.isInteger(value) ? "int" : "float", bytes: Buffer.from(String(value)) };
  return { type: "str", bytes: Buffer.from(value, "utf8") };
}

function encryptValue(value: Leaf, key: Buffer, aad: string): string {
  if (value === "") return ""; // sops leaves empty strings as they are
  const { type, bytes } = typed(value);
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  c.setAAD(Buffer.from(aad, "utf8"));
  const data = Buffer.concat([c.update(bytes), c.final()]);
  const b64 = (b: Buffer) => b.toString("base64");
  return `ENC[AES256_GCM,data:${b64(data)},iv:${b64(iv)},tag:${b64(c.getAuthTag())},type:${type}]`;
}

/** The decrypted value and the bytes the MAC covers; throws a plain Error (the caller names the path). */
function decryptValue(text: string, key: Buffer, aad: string): { value: Leaf; bytes: Buffer } {
  if (text === "") return { value: "", bytes: Buffer.alloc(0) };
  const m = ENC.exec(text);
  if (!m) throw new Error("not an ENC[AES256_GCM,...] value");
  const [data, iv, tag] = [m[1], m[2], m[3]].map((s) => Buffer.from(s, "base64"));
  if (tag.length !== TAG_BYTES || iv.length === 0) throw new Error("malformed iv or tag");
  const d = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  d.setAAD(Buffer.from(aad, "utf8"));
  d.setAuthTag(tag);
  let bytes: Buffer;
  try {
    bytes = Buffer.concat([d.update(data), d.final()]);
  } catch {
    throw new Error("authentication failed (wrong data key, or the value was changed or moved)");
  }
  const s = bytes.toString("utf8");
  switch (m[4]) {
    case "str":
    case "bytes":
    case "time":
      return { value: s, bytes };
    case "int":
      if (!/^[+-]?\d+$/.test(s)) throw new Error("type int but not an integer");
      return { value: Number(s), bytes };
    case "float":
      if (Number.isNaN(Number(s))) throw new Error("type float but not a number");
      return { value: Number(s), bytes };
    case "bool":
      // Go's strconv.ParseBool, which sops uses.
      if (["1", "t", "T", "true", "TRUE", "True"].includes(s)) return { value: true, bytes };
      if (["0", "f", "F", "false", "FALSE", "False"].includes(s)) return { value: false, bytes };
      throw new Error("type bool but not a boolean");
    default:
      throw new Error(`unknown type ${m[4]}`);
  }
}

const entriesOf = (t: Tree): [string, unknown][] =>
  t instanceof Map ? [...t].map(([k, v]) => [String(k), v]) : Object.entries(t);

const isTree = (v: unknown): v is Tree =>
  v instanceof Map || (typeof v === "object" && v !== null && !Array.isArray(v));

/**
 * Walks the values in document order, as sops does: maps by key, lists item by item under the same
 * path; null is neither encrypted nor hashed. `leaf` returns the value to put in the new tree.
 */
function walk(value: unknown, path: string[], leaf: (v: Leaf, path: string[]) => unknown): unknown {
  if (value === null || value === undefined) return null;
  if (Array.isArray(value)) return value.map((v) => walk(v, path, leaf));
  if (isTree(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of entriesOf(value)) out[k] = walk(v, [...path, k], leaf);
    return out;
  }
  if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
    return leaf(value, path);
  throw new Error(`unsupported value type ${typeof value} at ${path.join(".")}`);
}

/** Go formats sops' date with time.RFC3339: whole seconds, "Z" for UTC. The MAC is bound to that text. */
function macDate(lastmodified: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/i.exec(lastmodified);
  if (!m) return lastmodified;
  const zone = m[2].toUpperCase();
  return `${m[1].toUpperCase()}${zone === "+00:00" ? "Z" : zone}`;
}

function newHash(macOnlyEncrypted: boolean) {
  const h = createHash("sha512");
  if (macOnlyEncrypted) h.update(MAC_ONLY_ENCRYPTED_INIT);
  return h;
}

/**
 * Encrypts `tree` (a mapping of strings, numbers, booleans, lists and mappings) to a SOPS YAML
 * document readable by sops with any of `recipients`' identities.
 */
export async function encryptSops(
  tree: Record<string, unknown>,
  recipients: readonly string[],
  now = new Date(),
): Promise<string> {
  if (recipients.length === 0) throw new OperationError("SOPS needs at least one age recipient");
  const dataKey = randomBytes(32);
  const age = [];
  for (const recipient of recipients) {
    // One age file per recipient, as sops writes them (`sops updatekeys` can then edit the list).
    const e = new Encrypter();
    e.addRecipient(recipient);
    age.push({ recipient, enc: armor.encode(await e.encrypt(dataKey)) });
  }
  const rules = rulesOf({}, "(new file)");
  const hash = newHash(false);
  const encrypted = walk(tree, [], (v, path) => {
    hash.update(typed(v).bytes);
    return rules.encrypted(path) ? encryptValue(v, dataKey, `${path.join(":")}:`) : v;
  }) as Record<string, unknown>;
  const lastmodified = `${now.toISOString().slice(0, 19)}Z`;
  const mac = encryptValue(hash.digest("hex").toUpperCase(), dataKey, lastmodified);
  const doc = new Document({
    ...encrypted,
    sops: {
      age,
      lastmodified,
      mac,
      unencrypted_suffix: DEFAULT_UNENCRYPTED_SUFFIX,
      version: SOPS_VERSION,
    },
  });
  // Quoted like sops writes it, so no YAML 1.1 reader takes it for a timestamp.
  (doc.getIn(["sops", "lastmodified"], true) as Scalar).type = Scalar.QUOTE_DOUBLE;
  return doc.toString({ indent: 4, lineWidth: 0 }); // sops' indentation; never folded
}

interface AgeEntry {
  recipient: string;
  enc: string;
}

/** The parsed document and its `sops` metadata; throws a one-line UserError naming what is wrong. */
function load(text: string, source: string): { doc: Map<unknown, unknown>; meta: Record<string, unknown> } {
  let doc: unknown;
  try {
    doc = parse(text, { mapAsMap: true }); // Map keeps the document's key order, which the MAC follows
  } catch (e) {
    throw fail(source, `not YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const sops = doc instanceof Map ? doc.get("sops") : undefined;
  if (!(sops instanceof Map)) throw fail(source, "not a SOPS file (no sops metadata)");
  return { doc: doc as Map<unknown, unknown>, meta: Object.fromEntries(entriesOf(sops)) };
}

function ageEntries(meta: Record<string, unknown>, source: string): AgeEntry[] {
  const groups = meta.key_groups;
  if (Array.isArray(groups) && groups.length > 0)
    throw fail(source, "sops key_groups (Shamir secret sharing) are not supported: use plain age recipients");
  const list = Array.isArray(meta.age) ? meta.age : [];
  return list.flatMap((e) => {
    const o = isTree(e) ? Object.fromEntries(entriesOf(e)) : {};
    return typeof o.recipient === "string" && typeof o.enc === "string"
      ? [{ recipient: o.recipient, enc: o.enc }]
      : [];
  });
}

/** The age recipients a SOPS file is encrypted to (public metadata; no key needed). */
export function sopsRecipients(text: string, source: string): string[] {
  return ageEntries(load(text, source).meta, source).map((e) => e.recipient);
}

/**
 * Decrypts a SOPS YAML document with age `identities` (AGE-SECRET-KEY-1…), verifies its MAC and
 * returns the plaintext tree (without the `sops` metadata). `identityName` names where the
 * identities came from, for the error when none fits.
 */
export async function decryptSops(
  text: string,
  identities: readonly string[],
  source: string,
  identityName: string,
): Promise<Record<string, unknown>> {
  const { doc, meta } = load(text, source);
  const entries = ageEntries(meta, source);
  const others = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"].filter(
    (k) => Array.isArray(meta[k]) && (meta[k] as unknown[]).length > 0,
  );
  const d = new Decrypter();
  for (const id of identities) d.addIdentity(id);
  let dataKey: Buffer | undefined;
  for (const e of entries) {
    try {
      dataKey = Buffer.from(await d.decrypt(armor.decode(e.enc), "uint8array"));
      break;
    } catch {
      // another recipient's stanza, or a malformed one: try the next, as sops does
    }
  }
  if (!dataKey)
    throw fail(
      source,
      entries.length
        ? `none of its age recipients (${entries.map((e) => e.recipient).join(", ")}) is an identity in ${identityName}`
        : `no age recipient in its sops metadata${others.length ? ` (only ${others.join(", ")}, which wg-egress cannot use)` : ""}`,
    );
  if (dataKey.length !== 32) throw fail(source, "the age-encrypted data key is not 32 bytes");
  const rules = rulesOf(meta, source);
  const hash = newHash(rules.macOnlyEncrypted);
  doc.delete("sops");
  const plain = walk(doc, [], (v, path) => {
    const where = path.join(".") || "(top)";
    if (!rules.encrypted(path)) {
      if (!rules.macOnlyEncrypted) hash.update(typed(v).bytes);
      return v;
    }
    if (typeof v !== "string") throw fail(source, `${where}: expected an encrypted value (ENC[...])`);
    try {
      const r = decryptValue(v, dataKey, `${path.join(":")}:`);
      hash.update(r.bytes);
      return r.value;
    } catch (e) {
      throw fail(source, `${where}: cannot decrypt: ${(e as Error).message}`);
    }
  }) as Record<string, unknown>;
  if (typeof meta.mac !== "string" || typeof meta.lastmodified !== "string" || meta.mac === "")
    throw fail(source, "no sops.mac / sops.lastmodified: refusing a file whose integrity cannot be checked");
  let fileMac: Leaf;
  try {
    fileMac = decryptValue(meta.mac, dataKey, macDate(meta.lastmodified)).value;
  } catch (e) {
    throw fail(
      source,
      `MAC cannot be decrypted (${(e as Error).message}): the file was changed; refusing it`,
    );
  }
  const computed = Buffer.from(hash.digest("hex").toUpperCase());
  const stored = Buffer.from(String(fileMac).toUpperCase());
  if (stored.length !== computed.length || !timingSafeEqual(stored, computed))
    throw fail(source, "MAC mismatch: values were changed, added or removed outside sops; refusing the file");
  return plain;
}
