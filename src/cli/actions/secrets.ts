import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { exitsOf, pickExit, pickExits, targetOf } from "../../config/exit-hosts.js";
import type { ExitSpec } from "../../config/exits.js";
import type { Config } from "../../config/schema.js";
import { writeFileAtomic } from "../../secrets/atomic.js";
import {
  exitSecretsOf,
  gatewayKeyOf,
  type SecretsData,
  secretField,
  withExitSecrets,
} from "../../secrets/data.js";
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
  exit?: string;
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

/** An exit with its own gateway key file gets its own gateway key (the others share the gateway's). */
const ownGatewayKey = (config: Config, x: ExitSpec) => x.privateKeyFile !== config.gateway.privateKeyFile;

/** New keys for one exit (and its own gateway key, when it has its own key file). */
function newExitSecrets(config: Config, x: ExitSpec, endpoint?: string) {
  return {
    privateKey: generatePrivateKey(),
    ...(ownGatewayKey(config, x) ? { gatewayPrivateKey: generatePrivateKey() } : {}),
    ...(endpoint ? { endpoint } : {}),
  };
}

/** The gateway key files this init writes (checked first, so nothing is half-created). */
function keyFilesOf(
  config: Config,
  o: SecretsOpts,
  xs: ExitSpec[],
  whole: boolean,
): Map<string, ExitSpec | null> {
  const files = new Map<string, ExitSpec | null>();
  if (o.gatewayKey === false) return files;
  // A new store has a new gateway key (gateway.privateKeyFile, or --gateway-key); one exit's new keys
  // change only that exit's own key file.
  if (whole) files.set(config.gateway.privateKeyFile, null);
  for (const x of xs) if (ownGatewayKey(config, x)) files.set(x.privateKeyFile, x);
  return files;
}

export async function init({ opts: o, config: load, configFile }: Run): Promise<void> {
  const config = await load();
  const store = openSecretsStore(config.secrets);
  const all = exitsOf(config);
  // --exit on an existing store: only that exit's keys are (re)created; the others' stay.
  const only = o.exit !== undefined && store.exists() ? pickExit(all, o.exit, "secrets init") : undefined;
  if (o.exit !== undefined) pickExits(all, o.exit); // an unknown name fails before anything is created
  const old = only ? await store.read() : undefined;
  if (only && old && exitSecretsOf(old, only) && !o.force)
    throw new UsageError(
      `${store.file} already has keys for exit ${only.name}: pass --force to replace them (that exit must then be set up again)`,
    );
  if (!only && store.exists() && !o.force)
    throw new UsageError(
      `${store.file} already exists: keep it (to store the API token: wg-egress secrets set-token --token-stdin${all.length > 1 ? "; new keys for one exit: --exit NAME" : ""}), or pass --force to replace it and every key in it`,
    );
  if (only?.primary)
    throw new UsageError(
      `exit ${only.name} holds the store's first keys: replace the whole store with wg-egress secrets init --force`,
    );
  const targets = only ? [only] : all;
  const keyFiles = keyFilesOf(config, o, targets, !only);
  for (const file of keyFiles.keys())
    if (existsSync(file) && !o.force)
      throw new UsageError(
        `${file} (${file === config.gateway.privateKeyFile ? "gateway.privateKeyFile" : "privateKeyFile of an exit"}) already exists: pass --force to replace it, --gateway-key FILE to write another, or --no-gateway-key`,
      );
  const token = only ? undefined : await tokenInput(o);
  // --endpoint belongs to the exit --exit names (else the first).
  const endpointFor = (x: ExitSpec) =>
    (o.exit === undefined ? x.primary : x.name === o.exit) ? o.endpoint : undefined;
  if (!existsSync(config.secrets.identityFile)) {
    const recipient = await createAgeIdentity(config.secrets.identityFile);
    print(`created age identity ${config.secrets.identityFile} (public key ${recipient})`);
  }
  let data: SecretsData = old ?? {
    exit: { privateKey: generatePrivateKey() },
    gateway: { privateKey: generatePrivateKey() },
    ...(token ? { hcloudToken: token } : {}),
    ...(endpointFor(all[0]) ? { endpoint: o.endpoint } : {}),
  };
  for (const x of targets)
    if (!x.primary) data = withExitSecrets(data, x, newExitSecrets(config, x, endpointFor(x)));
  await store.write(data);
  print(
    only
      ? `stored new keys for exit ${only.name} in ${store.file}`
      : `created ${store.file} (${config.secrets.backend})`,
  );
  for (const [file, x] of keyFiles) {
    writeFileAtomic(file, `${x ? gatewayKeyOf(data, x) : data.gateway.privateKey}\n`, 0o600);
    print(`wrote the gateway's private key${x ? ` for exit ${x.name}` : ""} to ${file} (0600)`);
  }
  printKeys(config, data, targets);
  if (!only) print(`hcloud token: ${token ? "stored" : "not stored"}`);
  const note = configDirNote(configFile);
  if (note) print(note);
}

/** The public keys of these exits (one exit: the two lines as always; several: each under its name). */
function printKeys(config: Config, data: SecretsData, xs: ExitSpec[]): void {
  const several = exitsOf(config).length > 1;
  for (const x of xs) {
    const own = exitSecretsOf(data, x);
    if (several) print(`exit ${x.name}:`);
    const pad = several ? "  " : "";
    print(
      `${pad}exit public key:    ${own ? publicKeyOf(own.privateKey) : `none (wg-egress secrets init --exit ${x.name})`}`,
    );
    print(`${pad}gateway public key: ${publicKeyOf(gatewayKeyOf(data, x))}`);
    if (several) print(`${pad}endpoint: ${own?.endpoint ?? "not set"}`);
  }
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
  const all = exitsOf(config);
  if (o.reveal) {
    if (!SECRET_FIELDS.includes(o.reveal as SecretField))
      throw new UsageError(`--reveal ${o.reveal}: expected one of ${SECRET_FIELDS.join(", ")}`);
    const x =
      o.reveal === "hcloudToken" ? all[0] : pickExit(all, o.exit, `secrets show --reveal ${o.reveal}`);
    const value = secretField(data, o.reveal as SecretField, x);
    if (value === undefined)
      throw new OperationError(
        `${o.reveal}${all.length > 1 ? ` of exit ${x.name}` : ""} is not set in ${store.file}`,
      );
    print(value);
    return;
  }
  print(`file: ${store.file} (${config.secrets.backend})`);
  if (all.length === 1) {
    printKeys(config, data, all);
    print(`endpoint: ${data.endpoint ?? "not set"}`);
  } else printKeys(config, data, pickExits(all, o.exit));
  print(`hcloud token: ${data.hcloudToken ? "set" : "not set"}`);
}

export async function rotate({ opts: o, config: load, configFile }: Run): Promise<void> {
  const { config, store } = await existingStore(load);
  const all = exitsOf(config);
  const x = pickExit(all, o.exit, "secrets rotate");
  // The gateway key is shared by the exits (and the first exit's keys are the store's top level):
  // rotating one exit's keys alone is not built yet. Refused before anything changes.
  if (all.length > 1)
    throw new UsageError(
      "secrets rotate with several exits is not supported yet: the gateway key is shared by the exits; replace one exit's keys with wg-egress secrets init --exit NAME --force, then exit install (or provision) that exit",
    );
  // The exit's VPS settings as that exit sees them (`exits[0].exit:` on top of `exit:`).
  await rotateKeys({ config: { ...config, exit: targetOf(config, x).host }, configFile, store, out: print });
}
