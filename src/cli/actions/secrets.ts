import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { writeFileAtomic } from "../../secrets/atomic.js";
import { secretField } from "../../secrets/data.js";
import { SECRET_FIELDS, type SecretField } from "../../secrets/fields.js";
import { rotateKeys } from "../../secrets/rotate.js";
import { createAgeIdentity, openSecretsStore } from "../../secrets/store.js";
import { OperationError, UsageError } from "../../util/errors.js";
import { generatePrivateKey, publicKeyOf } from "../../wireguard/keys.js";
import type { Invocation } from "../command.js";

export interface SecretsOpts {
  force?: boolean;
  tokenStdin?: boolean;
  endpoint?: string;
  reveal?: string;
  /** false for --no-gateway-key. */
  gatewayKey?: string | false;
}

type Run = Invocation<SecretsOpts>;

const print = (line: string) => process.stdout.write(`${line}\n`);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
}

/** The token for init/set-token: stdin with --token-stdin, else HCLOUD_TOKEN. */
async function tokenInput(o: SecretsOpts): Promise<string | undefined> {
  const token = o.tokenStdin ? await readStdin() : process.env.HCLOUD_TOKEN?.trim();
  if (o.tokenStdin && !token) throw new UsageError("--token-stdin: stdin was empty");
  return token || undefined;
}

/**
 * The proxy (another user) reads the config: every directory above it must be searchable by others. Older
 * versions created /etc/wg-egress 0700; say so instead of letting the proxy fail at its next start.
 */
function configDirNote(configFile: string): string | undefined {
  for (let dir = dirname(resolve(configFile)); ; dir = dirname(dir)) {
    try {
      if (!(statSync(dir).mode & 0o001))
        return `note: ${dir} is not searchable by other users: the proxy cannot read ${configFile}; chmod o+x ${dir} (0755; the keys inside stay 0600)`;
    } catch {
      // not there (yet)
    }
    if (dir === dirname(dir)) return undefined;
  }
}
/** The store named by the config; refuses when it does not exist yet. */
async function existingStore(load: Run["config"]) {
  const config = await load();
  const store = openSecretsStore(config.secrets);
  if (!store.exists())
    throw new UsageError(`no secrets store at ${store.file}: create it with wg-egress secrets init`);
  return { config, store };
}

export async function init({ opts: o, config: load, configFile }: Run): Promise<void> {
  const config = await load();
  const store = openSecretsStore(config.secrets);
  if (store.exists() && !o.force)
    throw new UsageError(
      `${store.file} already exists: keep it (to store the API token: wg-egress secrets set-token --token-stdin), or pass --force to replace it and every key in it`,
    );
  // The gateway reads its key from this file; checked first so nothing is half-created.
  const keyFile = o.gatewayKey === false ? undefined : config.gateway.privateKeyFile;
  if (keyFile && existsSync(keyFile) && !o.force)
    throw new UsageError(
      `${keyFile} (gateway.privateKeyFile) already exists: pass --force to replace it, --gateway-key FILE to write another, or --no-gateway-key`,
    );
  const token = await tokenInput(o);
  if (!existsSync(config.secrets.identityFile)) {
    const recipient = await createAgeIdentity(config.secrets.identityFile);
    print(`created age identity ${config.secrets.identityFile} (public key ${recipient})`);
  }
  const data = {
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
    ...(token ? { hcloudToken: token } : {}),
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
  };
  await store.write(data);
  print(`created ${store.file} (${config.secrets.backend})`);
  if (keyFile) {
    writeFileAtomic(keyFile, `${data.gateway.privateKey}\n`, 0o600);
    print(`wrote the gateway's private key to ${keyFile} (0600)`);
  }
  print(`exit public key:    ${publicKeyOf(data.exit.privateKey)}`);
  print(`gateway public key: ${publicKeyOf(data.gateway.privateKey)}`);
  print(`hcloud token: ${token ? "stored" : "not stored"}`);
  const note = configDirNote(configFile);
  if (note) print(note);
}

export async function setToken({ opts: o, config: load }: Run): Promise<void> {
  const { store } = await existingStore(load);
  const token = await tokenInput(o);
  if (!token) throw new UsageError("no token given: pass --token-stdin (token on stdin) or set HCLOUD_TOKEN");
  const data = await store.read();
  if (data.hcloudToken === token) print(`${store.file} already holds this token`);
  else {
    await store.write({ ...data, hcloudToken: token });
    print(`stored the Hetzner API token in ${store.file}`);
  }
}

export async function show({ opts: o, config: load }: Run): Promise<void> {
  const { config, store } = await existingStore(load);
  const data = await store.read();
  if (o.reveal) {
    if (!SECRET_FIELDS.includes(o.reveal as SecretField))
      throw new UsageError(`--reveal ${o.reveal}: expected one of ${SECRET_FIELDS.join(", ")}`);
    const value = secretField(data, o.reveal as SecretField);
    if (value === undefined) throw new OperationError(`${o.reveal} is not set in ${store.file}`);
    print(value);
    return;
  }
  print(`file: ${store.file} (${config.secrets.backend})`);
  print(`exit public key:    ${publicKeyOf(data.exit.privateKey)}`);
  print(`gateway public key: ${publicKeyOf(data.gateway.privateKey)}`);
  print(`endpoint: ${data.endpoint ?? "not set"}`);
  print(`hcloud token: ${data.hcloudToken ? "set" : "not set"}`);
}

export async function rotate({ config: load, configFile }: Run): Promise<void> {
  const { config, store } = await existingStore(load);
  await rotateKeys({ config, configFile, store, out: print });
}
