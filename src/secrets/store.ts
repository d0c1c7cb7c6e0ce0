import { existsSync, readFileSync, statSync } from "node:fs";
import { armor, Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import type { SecretsConfig } from "../config/secrets-schema.js";
import { OperationError, UsageError, UserError } from "../util/errors.js";
import { log } from "../util/log.js";
import { writeFileAtomic } from "./atomic.js";
import {
  parseSecretsYaml,
  type SecretsData,
  secretsDataSchema,
  serializeSecrets,
  validateSecrets,
} from "./data.js";
import { decryptSops, encryptSops, sopsRecipients } from "./sops.js";

/** The encrypted secrets file: an age file (default) or a SOPS YAML file with age recipients. */
export interface SecretsStore {
  readonly file: string;
  exists(): boolean;
  read(): Promise<SecretsData>;
  write(data: SecretsData): Promise<void>;
}

/** Reads a file that must not be readable by others (a private key or an encrypted secret). */
function readPrivate(path: string, what: string): Buffer {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // `secrets init` refuses an existing store: for a lost identity, only a backup or starting over helps.
    throw new UsageError(
      what === "age identity" && code === "ENOENT"
        ? `the age identity ${path} is missing: restore it from your backup (the store cannot be decrypted without it), or start over with wg-egress secrets init --force (new keys for both sides; set the exit up again)`
        : `cannot read ${what} ${path}: ${code ?? e}; create it with wg-egress secrets init`,
    );
  }
  if (st.mode & 0o077) throw new UsageError(`${what} ${path} is readable by other users: chmod 600 ${path}`);
  return readFileSync(path);
}

/** Every identity in an age identity file (age-keygen's format: comments, one AGE-SECRET-KEY-… a line). */
function identitiesOf(text: string, path: string): string[] {
  const ids = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("AGE-SECRET-KEY-"));
  if (ids.length === 0)
    throw new UsageError(
      `${path} holds no age identity (AGE-SECRET-KEY-1...): recreate it with wg-egress secrets init`,
    );
  return ids;
}

/** Creates an age identity file (0600) in the format of age-keygen; returns its public recipient. */
export async function createAgeIdentity(path: string): Promise<string> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  writeFileAtomic(
    path,
    `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`,
    0o600,
  );
  return recipient;
}

const AGE_ARMOR = "-----BEGIN AGE ENCRYPTED FILE-----";
const AGE_BINARY = "age-encryption.org/";
const looksSops = (bytes: Buffer) => /^sops:$/m.test(bytes.toString("utf8"));

/** How one backend turns the secrets into file bytes and back. */
interface Format {
  decrypt(bytes: Buffer, identities: string[], file: string, identityFile: string): Promise<unknown>;
  encrypt(data: SecretsData, recipients: string[]): Promise<string>;
  /** The recipients an existing file is encrypted to, when the format lists them. */
  recipientsOf?(bytes: Buffer, file: string): string[];
}

/**
 * age: reads both encodings `age` writes — binary (plain `age -r`) and armored (`age -a`) — and
 * writes armored: text survives copy-paste, config management and git diffs, and `age -d` reads it.
 */
const AGE: Format = {
  async decrypt(bytes, identities, file) {
    let ciphertext: Uint8Array;
    if (bytes.subarray(0, AGE_BINARY.length).toString("latin1") === AGE_BINARY) ciphertext = bytes;
    else if (bytes.toString("utf8").trimStart().startsWith(AGE_ARMOR))
      ciphertext = armor.decode(bytes.toString("utf8"));
    else
      throw new OperationError(
        `${file} is not an age file (binary or armored)${looksSops(bytes) ? ": it is a SOPS file, set secrets.backend: sops" : ""}`,
      );
    const d = new Decrypter();
    for (const id of identities) d.addIdentity(id);
    return parseSecretsYaml(await d.decrypt(ciphertext, "text"), file);
  },
  async encrypt(data, recipients) {
    const e = new Encrypter();
    for (const r of recipients) e.addRecipient(r);
    return armor.encode(await e.encrypt(serializeSecrets(data)));
  },
};

/** SOPS YAML with age recipients (the seed's `secrets.sops.yaml`), natively: no sops binary. */
const SOPS: Format = {
  async decrypt(bytes, identities, file, identityFile) {
    const text = bytes.toString("utf8");
    if (text.trimStart().startsWith(AGE_ARMOR) || text.startsWith(AGE_BINARY))
      throw new OperationError(`${file} is an age file, not SOPS: set secrets.backend: age`);
    return decryptSops(text, identities, file, identityFile);
  },
  encrypt: (data, recipients) => encryptSops(secretsDataSchema.parse(data), recipients),
  recipientsOf: (bytes, file) => sopsRecipients(bytes.toString("utf8"), file),
};

class FileStore implements SecretsStore {
  readonly file: string;

  constructor(
    private readonly cfg: SecretsConfig,
    private readonly format: Format,
  ) {
    this.file = cfg.file;
  }

  exists(): boolean {
    return existsSync(this.file);
  }

  private identities(): string[] {
    const path = this.cfg.identityFile;
    return identitiesOf(readPrivate(path, "age identity").toString("utf8"), path);
  }

  async read(): Promise<SecretsData> {
    const identities = this.identities();
    const bytes = readPrivate(this.file, "secrets file");
    let raw: unknown;
    try {
      raw = await this.format.decrypt(bytes, identities, this.file, this.cfg.identityFile);
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new OperationError(
        `cannot decrypt ${this.file} with ${this.cfg.identityFile}: ${(e as Error).message}`,
      );
    }
    return validateSecrets(raw, this.file);
  }

  /** The identity file's first identity (so this host can read what it writes) and secrets.recipients. */
  private async recipients(): Promise<string[]> {
    const own = await identityToRecipient(this.identities()[0]);
    for (const r of this.cfg.recipients)
      try {
        new Encrypter().addRecipient(r);
      } catch {
        throw new UsageError(`secrets.recipients: ${r} is not a valid age recipient (bad checksum?)`);
      }
    return [...new Set([own, ...this.cfg.recipients])];
  }

  async write(data: SecretsData): Promise<void> {
    const recipients = await this.recipients();
    this.warnDropped(recipients);
    writeFileAtomic(this.file, await this.format.encrypt(data, recipients), 0o600);
  }

  /** A file made elsewhere (sops with .sops.yaml rules) may list recipients the config does not. */
  private warnDropped(recipients: string[]): void {
    if (!this.format.recipientsOf || !this.exists()) return;
    let before: string[];
    try {
      before = this.format.recipientsOf(readFileSync(this.file), this.file);
    } catch {
      return; // unreadable metadata: nothing to compare
    }
    const dropped = before.filter((r) => !recipients.includes(r));
    if (dropped.length)
      log.warn(
        { file: this.file, dropped },
        "these age recipients can no longer read the rewritten secrets file: add them to secrets.recipients to keep them",
      );
  }
}

export function openSecretsStore(cfg: SecretsConfig): SecretsStore {
  return new FileStore(cfg, cfg.backend === "sops" ? SOPS : AGE);
}
