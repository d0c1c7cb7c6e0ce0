import type { Command } from "commander";
import { SECRET_FIELDS } from "../secrets/fields.js";
import type { SecretsOpts } from "./actions/secrets.js";
import { defineCommand, type Invocation } from "./command.js";
import { EXIT_ALL, EXIT_ONE, type Flag } from "./flags.js";

const STORE: Flag[] = [
  { flags: "--file <file>", key: "secrets.file", help: "the encrypted secrets file" },
  { flags: "--backend <backend>", key: "secrets.backend", help: "age | sops" },
  { flags: "--identity <file>", key: "secrets.identityFile", help: "age identity file" },
];

const TOKEN_STDIN: Flag = {
  flags: "--token-stdin",
  help: "read the Hetzner API token from stdin (else HCLOUD_TOKEN when set)",
};

type Action = keyof typeof import("./actions/secrets.js");
const run = (name: Action) => async (inv: Invocation<SecretsOpts>) =>
  (await import("./actions/secrets.js"))[name](inv);

export function registerSecrets(program: Command): void {
  const secrets = program
    .command("secrets")
    .description(
      "the encrypted store of both sides' WireGuard keys, the Hetzner API token and the exit endpoint",
    );

  defineCommand(secrets, {
    name: "init",
    description: "create the age identity (if missing) and the store with new WireGuard keys for both sides",
    flags: [
      ...STORE,
      TOKEN_STDIN,
      {
        flags: "--endpoint <host:port>",
        key: "gateway.peer.endpoint",
        help: "the exit's endpoint, if already known",
      },
      {
        flags: "--gateway-key <file>",
        key: "gateway.privateKeyFile",
        help: "where to write the gateway's private key",
        toConfig: (v) => (typeof v === "string" ? v : undefined), // not --no-gateway-key's false
      },
      { flags: "--no-gateway-key", help: "write no gateway key file (this machine is not the gateway)" },
      {
        flags: "--exit <name>",
        help: "on an existing store: new keys for this exit only (another exit than the first; with --force, replaced)",
      },
      { flags: "--force", help: "replace an existing store (its keys are lost)" },
    ],
    run: run("init"),
  });

  defineCommand(secrets, {
    name: "set-token",
    description: "store (or replace) the Hetzner API token in the existing store; the keys stay as they are",
    flags: [...STORE, TOKEN_STDIN],
    run: run("setToken"),
  });

  defineCommand(secrets, {
    name: "show",
    description:
      "print the public parts (public keys, endpoint, whether a token is stored); private ones only with --reveal",
    flags: [
      ...STORE,
      { ...EXIT_ALL, help: `${EXIT_ALL.help} (--reveal of a key: the exit it belongs to)` },
      { flags: "--reveal <field>", help: `print only this private value: ${SECRET_FIELDS.join(" | ")}` },
    ],
    run: run("show"),
  });

  defineCommand(secrets, {
    name: "rotate",
    description:
      "new WireGuard keys for both sides without dropping the tunnel: the exit over SSH (exit.ssh.target), then the gateway; refuses without a way to reach the exit",
    flags: [...STORE, EXIT_ONE],
    run: run("rotate"),
  });
}
