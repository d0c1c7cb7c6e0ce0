import { existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import { writeFileAtomic } from "../secrets/atomic.js";
import { SECRET_FIELDS, type SecretField, secretField } from "../secrets/data.js";
import { rotateKeys } from "../secrets/rotate.js";
import { createAgeIdentity, openSecretsStore } from "../secrets/store.js";
import { UserError } from "../util/errors.js";
import { generatePrivateKey, publicKeyOf } from "../wireguard/keys.js";
import { addConfigOption, configFrom } from "./common.js";

interface Opts {
  config?: string;
  file?: string;
  backend?: string;
  identity?: string;
  force?: boolean;
  tokenStdin?: boolean;
  endpoint?: string;
  reveal?: string;
  /** A file, or false for --no-gateway-key. */
  gatewayKey?: string | false;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
}

/** The token for init/set-token: stdin with --token-stdin, else HCLOUD_TOKEN. */
async function tokenInput(o: Opts): Promise<string | undefined> {
  const token = o.tokenStdin ? await readStdin() : process.env.HCLOUD_TOKEN?.trim();
  if (o.tokenStdin && !token) throw new UserError("--token-stdin: stdin was empty");
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
function storeOptions(c: Command): Command {
  return addConfigOption(c)
    .option("--file <file>", "the encrypted secrets file (secrets.file)")
    .option("--backend <backend>", "age | sops (secrets.backend)")
    .option("--identity <file>", "age identity file (secrets.identityFile)");
}

function load(o: Opts) {
  return configFrom(o, {
    "secrets.file": o.file,
    "secrets.backend": o.backend,
    "secrets.identityFile": o.identity,
  });
}

export function registerSecrets(program: Command): void {
  const secrets = program
    .command("secrets")
    .description(
      "the encrypted store of both sides' WireGuard keys, the Hetzner API token and the exit endpoint",
    );

  storeOptions(secrets.command("init"))
    .description("create the age identity (if missing) and the store with new WireGuard keys for both sides")
    .option("--token-stdin", "read the Hetzner API token from stdin (else HCLOUD_TOKEN when set)")
    .option("--endpoint <host:port>", "the exit's endpoint, if already known")
    .option("--gateway-key <file>", "where to write the gateway's private key (gateway.privateKeyFile)")
    .option("--no-gateway-key", "write no gateway key file (this machine is not the gateway)")
    .option("--force", "replace an existing store (its keys are lost)")
    .action(async (o: Opts) => {
      const config = configFrom(o, {
        "secrets.file": o.file,
        "secrets.backend": o.backend,
        "secrets.identityFile": o.identity,
        "gateway.peer.endpoint": o.endpoint,
        "gateway.privateKeyFile": typeof o.gatewayKey === "string" ? o.gatewayKey : undefined,
      });
      const store = openSecretsStore(config.secrets);
      if (store.exists() && !o.force)
        throw new UserError(
          `${store.file} already exists: keep it (to store the API token: wg-egress secrets set-token --token-stdin), or pass --force to replace it and every key in it`,
        );
      // The gateway reads its key from this file; checked first so nothing is half-created.
      const keyFile = o.gatewayKey === false ? undefined : config.gateway.privateKeyFile;
      if (keyFile && existsSync(keyFile) && !o.force)
        throw new UserError(
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
      const note = configDirNote(o.config ?? DEFAULT_CONFIG_PATH);
      if (note) print(note);
    });

  storeOptions(secrets.command("set-token"))
    .description("store (or replace) the Hetzner API token in the existing store; the keys stay as they are")
    .option("--token-stdin", "read the token from stdin (else HCLOUD_TOKEN)")
    .action(async (o: Opts) => {
      const store = openSecretsStore(load(o).secrets);
      if (!store.exists())
        throw new UserError(`no secrets store at ${store.file}: create it with wg-egress secrets init`);
      const token = await tokenInput(o);
      if (!token)
        throw new UserError("no token given: pass --token-stdin (token on stdin) or set HCLOUD_TOKEN");
      const data = await store.read();
      if (data.hcloudToken === token) print(`${store.file} already holds this token`);
      else {
        await store.write({ ...data, hcloudToken: token });
        print(`stored the Hetzner API token in ${store.file}`);
      }
    });

  storeOptions(secrets.command("show"))
    .description(
      "print the public parts (public keys, endpoint, whether a token is stored); private ones only with --reveal",
    )
    .option("--reveal <field>", `print only this private value: ${SECRET_FIELDS.join(" | ")}`)
    .action(async (o: Opts) => {
      const config = load(o);
      const store = openSecretsStore(config.secrets);
      if (!store.exists())
        throw new UserError(`no secrets store at ${store.file}: create it with wg-egress secrets init`);
      const data = await store.read();
      if (o.reveal) {
        if (!SECRET_FIELDS.includes(o.reveal as SecretField))
          throw new UserError(`--reveal ${o.reveal}: expected one of ${SECRET_FIELDS.join(", ")}`);
        const value = secretField(data, o.reveal as SecretField);
        if (value === undefined) throw new UserError(`${o.reveal} is not set in ${store.file}`, 1);
        print(value);
        return;
      }
      print(`file: ${store.file} (${config.secrets.backend})`);
      print(`exit public key:    ${publicKeyOf(data.exit.privateKey)}`);
      print(`gateway public key: ${publicKeyOf(data.gateway.privateKey)}`);
      print(`endpoint: ${data.endpoint ?? "not set"}`);
      print(`hcloud token: ${data.hcloudToken ? "set" : "not set"}`);
    });

  storeOptions(secrets.command("rotate"))
    .description(
      "new WireGuard keys for both sides without dropping the tunnel: the exit over SSH (exit.ssh.target), then the gateway; refuses without a way to reach the exit",
    )
    .action(async (o: Opts) => {
      const config = load(o);
      const store = openSecretsStore(config.secrets);
      if (!store.exists())
        throw new UserError(`no secrets store at ${store.file}: create it with wg-egress secrets init`);
      await rotateKeys({ config, configFile: o.config ?? DEFAULT_CONFIG_PATH, store, out: print });
    });
}
