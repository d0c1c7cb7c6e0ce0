import type { Command } from "commander";
import type { ExitOpts } from "./actions/exit.js";
import { defineCommand, type Invocation } from "./command.js";
import { registerDrain } from "./drain.js";
import { EXIT_ALL, EXIT_ONE, type Flag, port, repeatable } from "./flags.js";

const GATEWAY_KEY: Flag = {
  flags: "--gateway-public-key <key>",
  key: "exit.gatewayPublicKey",
  help: "the gateway's public key",
  defaultText: "from the secrets store",
};

const SSH: Flag[] = [
  { flags: "--ssh <user@host>", key: "exit.ssh.target", help: "the machine" },
  { flags: "--port <n>", key: "exit.ssh.port", help: "SSH port", parse: port("--port") },
  { flags: "--identity <file>", key: "exit.ssh.identityFile", help: "SSH private key file" },
  {
    flags: "--ssh-option <opt>",
    key: "exit.ssh.options",
    help: "extra ssh -o option, repeatable",
    parse: repeatable(),
  },
];

const HOME_IP: Flag = {
  flags: "--home-ip <addr>",
  help: "allow SSH from ADDR instead of exit.sshAllowFrom or the detected home IP, repeatable",
  parse: repeatable(),
};

type Action = keyof typeof import("./actions/exit.js");
const run = (name: Action) => async (inv: Invocation<ExitOpts>) =>
  (await import("./actions/exit.js"))[name](inv);

export function registerExit(program: Command): void {
  const exit = program
    .command("exit")
    .description(
      "the exit VPS: render its cloud-init, install over SSH, or manage it on Hetzner Cloud (HCLOUD_TOKEN, HCLOUD_ENDPOINT)",
    );

  defineCommand(exit, {
    name: "render",
    description:
      "print the exit's cloud-init user-data (or --format script: the shell setup script); holds the exit's private key",
    flags: [
      EXIT_ONE,
      GATEWAY_KEY,
      { flags: "--format <format>", help: "cloud-init | script", default: "cloud-init" },
    ],
    run: run("render"),
  });

  defineCommand(exit, {
    name: "install",
    description:
      "apply the exit configuration to an existing Debian/Ubuntu machine over SSH (script and keys on stdin)",
    flags: [
      EXIT_ONE,
      GATEWAY_KEY,
      ...SSH,
      { flags: "--dir <dir>", key: "exit.ssh.dir", help: "directory for the exit's files on the machine" },
      {
        flags: "--no-system",
        key: "exit.ssh.system",
        help: "only WireGuard, nftables and sysctls: no boot unit, SSH hardening or upgrades",
      },
    ],
    run: run("install"),
  });

  defineCommand(exit, {
    name: "check",
    description:
      "the exit's side of the runbook over SSH, read-only: interface and peer, handshake age, forwarding, masquerade, firewall, resolver; exit 1 on failure",
    flags: [
      EXIT_ALL,
      ...SSH,
      { flags: "--json", help: "machine-readable output: [{name, verdict, evidence, fix}]" },
      { flags: "--resolve <name>", help: "a name the exit must resolve", default: "deb.debian.org" },
    ],
    run: run("check"),
  });

  defineCommand(exit, {
    name: "provision",
    description:
      "create (or find, by name and label) the Hetzner exit server and its firewall; record the endpoint; print the cost",
    flags: [
      EXIT_ONE,
      GATEWAY_KEY,
      { flags: "--location <name>", key: "exit.hetzner.location", help: "Hetzner location" },
      { flags: "--server-type <name>", key: "exit.hetzner.serverType", help: "Hetzner server type" },
      { flags: "--image <name>", key: "exit.hetzner.image", help: "Hetzner image" },
      HOME_IP,
      { flags: "--no-set-endpoint", help: "do not record the endpoint in the config file" },
    ],
    run: run("provisionExit"),
  });

  defineCommand(exit, {
    name: "status",
    description:
      "the Hetzner exits: server state and address, firewall rules, reverse DNS, monthly cost; exit 1 when one is wrong",
    flags: [EXIT_ALL],
    run: run("exitStatus"),
  });

  defineCommand(exit, {
    name: "set-endpoint [endpoint]",
    description:
      "record the exit's endpoint (HOST:PORT; default: the Hetzner server's IPv4) as gateway.peer.endpoint (another exit: exits[i].peer.endpoint)",
    flags: [EXIT_ONE],
    run: run("setEndpoint"),
  });

  defineCommand(exit, {
    name: "update-home-ip",
    description:
      "point the firewall's SSH rule at the current home IP (or exit.sshAllowFrom); changes nothing when it already does (for a timer)",
    flags: [EXIT_ONE, HOME_IP],
    run: run("updateHomeIpRule"),
  });

  defineCommand(exit, {
    name: "deprovision",
    description: "delete the Hetzner exit server, then its firewall (only resources carrying our labels)",
    flags: [EXIT_ONE, { flags: "-y, --yes", help: "do not ask for confirmation" }],
    run: run("deprovisionExit"),
  });

  registerDrain(exit);
}
