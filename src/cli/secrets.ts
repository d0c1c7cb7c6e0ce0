import { existsSync } from "node:fs";
import type { Command } from "commander";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import { writeFileAtomic } from "../secrets/atomic.js";
import { SECRET_FIELDS, type SecretField, secretField } from "../secrets/data.js";
import { planRotation } from "../secrets/rotate.js";
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
}

const print = (line: string) => process.stdout.write(`${line}\n`);

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8").trim();
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
    .option("--force", "replace an existing store (its keys are lost)")
    .action(async (o: Opts) => {
      const config = configFrom(o, {
        "secrets.file": o.file,
        "secrets.backend": o.backend,
        "secrets.identityFile": o.identity,
        "gateway.peer.endpoint": o.endpoint,
      });
      const store = openSecretsStore(config.secrets);
      if (store.exists() && !o.force)
        throw new UserError(`${store.file} already exists: keep it, or pass --force to replace it`);
      // The gateway reads its key from this file; checked first so nothing is half-created.
      const keyFile = config.gateway.privateKeyFile;
      if (existsSync(keyFile) && !o.force)
        throw new UserError(`${keyFile} (gateway.privateKeyFile) already exists: pass --force to replace it`);
      const token = o.tokenStdin ? await readStdin() : process.env.HCLOUD_TOKEN?.trim();
      if (o.tokenStdin && !token) throw new UserError("--token-stdin: stdin was empty");
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
      writeFileAtomic(keyFile, `${data.gateway.privateKey}\n`, 0o600);
      print(`wrote the gateway's private key to ${keyFile} (0600)`);
      print(`exit public key:    ${publicKeyOf(data.exit.privateKey)}`);
      print(`gateway public key: ${publicKeyOf(data.gateway.privateKey)}`);
      print(`hcloud token: ${token ? "stored" : "not stored"}`);
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
      "new WireGuard keys for both sides; updates the exit (over SSH when exit.ssh.target is set) and the gateway",
    )
    .action(async (o: Opts) => {
      const config = load(o);
      const store = openSecretsStore(config.secrets);
      if (!store.exists())
        throw new UserError(`no secrets store at ${store.file}: create it with wg-egress secrets init`);
      const plan = planRotation(config, store, await store.read(), o.config ?? DEFAULT_CONFIG_PATH);
      for (const [i, step] of plan.steps.entries()) {
        try {
          await step.run();
        } catch (e) {
          throw new UserError(
            `rotation step ${i + 1} (${step.what}) failed: ${(e as Error).message}; the new keys are in ${store.file}, finish with wg-egress exit install and wg-egress gateway up`,
            1,
          );
        }
        print(`${i + 1}. ${step.what}: done`);
      }
      for (const line of plan.manual) print(line);
    });
}
