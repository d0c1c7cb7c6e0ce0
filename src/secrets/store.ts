import { existsSync, readFileSync, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { armor, Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from "age-encryption";
import type { SecretsConfig } from "../config/secrets-schema.js";
import { UserError } from "../util/errors.js";
import { run } from "../util/run.js";
import { writeFileAtomic } from "./atomic.js";
import { parseSecrets, type SecretsData, serializeSecrets } from "./data.js";

/** The encrypted secrets file: age (built in, default) or SOPS (through the sops binary). */
export interface SecretsStore {
  readonly file: string;
  exists(): boolean;
  read(): Promise<SecretsData>;
  write(data: SecretsData): Promise<void>;
}

/** Reads a file that must not be readable by others (a private key or an encrypted secret). */
function readPrivate(path: string, what: string): string {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // `secrets init` refuses an existing store: for a lost identity, only a backup or starting over helps.
    throw new UserError(
      what === "age identity" && code === "ENOENT"
        ? `the age identity ${path} is missing: restore it from your backup (the store cannot be decrypted without it), or start over with wg-egress secrets init --force (new keys for both sides; set the exit up again)`
        : `cannot read ${what} ${path}: ${code ?? e}; create it with wg-egress secrets init`,
    );
  }
  if (st.mode & 0o077) throw new UserError(`${what} ${path} is readable by other users: chmod 600 ${path}`);
  return readFileSync(path, "utf8");
}

function identityOf(text: string, path: string): string {
  const line = text.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-"));
  if (!line)
    throw new UserError(
      `${path} holds no age identity (AGE-SECRET-KEY-1...): recreate it with wg-egress secrets init`,
    );
  return line.trim();
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

class AgeStore implements SecretsStore {
  constructor(
    readonly file: string,
    private readonly identityFile: string,
  ) {}

  exists(): boolean {
    return existsSync(this.file);
  }

  private identity(): string {
    return identityOf(readPrivate(this.identityFile, "age identity"), this.identityFile);
  }

  async read(): Promise<SecretsData> {
    const d = new Decrypter();
    d.addIdentity(this.identity());
    let text: string;
    try {
      text = await d.decrypt(armor.decode(readPrivate(this.file, "secrets file")), "text");
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(
        `cannot decrypt ${this.file} with ${this.identityFile}: ${(e as Error).message}`,
        1,
      );
    }
    return parseSecrets(text, this.file);
  }

  async write(data: SecretsData): Promise<void> {
    const e = new Encrypter();
    e.addRecipient(await identityToRecipient(this.identity()));
    writeFileAtomic(this.file, armor.encode(await e.encrypt(serializeSecrets(data))), 0o600);
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

/**
 * SOPS-encrypted YAML (`secrets.sops.yaml`, as the seed kept it). Plaintext only ever travels through
 * sops' stdin/stdout; the creation rules (.sops.yaml, SOPS_AGE_RECIPIENTS, ...) are sops' own.
 */
class SopsStore implements SecretsStore {
  constructor(readonly file: string) {}

  exists(): boolean {
    return existsSync(this.file);
  }

  private check(): void {
    if (!onPath("sops")) throw new UserError("sops not found: install sops or use backend age", 1);
  }

  async read(): Promise<SecretsData> {
    this.check();
    readPrivate(this.file, "secrets file");
    const r = await run("sops", ["--decrypt", "--input-type", "yaml", "--output-type", "yaml", this.file]);
    return parseSecrets(r.stdout, this.file);
  }

  async write(data: SecretsData): Promise<void> {
    this.check();
    // sops reads the plaintext from /dev/stdin, which cannot be opened when stdin is a socket (as Node's
    // pipes are): `cat |` turns it into a real pipe. The plaintext never touches the disk.
    const r = await run(
      "sh",
      [
        "-c",
        'cat | exec sops --encrypt --input-type yaml --output-type yaml --filename-override "$1" /dev/stdin',
        "sh",
        this.file,
      ],
      { input: serializeSecrets(data) },
    );
    writeFileAtomic(this.file, r.stdout, 0o600);
  }
}

export function openSecretsStore(cfg: SecretsConfig): SecretsStore {
  return cfg.backend === "sops" ? new SopsStore(cfg.file) : new AgeStore(cfg.file, cfg.identityFile);
}
