import type { Command } from "commander";
import type { GatewayOpts } from "./actions/gateway.js";
import { defineCommand, type Invocation } from "./command.js";
import { EXIT_ALL as EXIT, INTERFACE } from "./flags.js";

type Action = keyof typeof import("./actions/gateway.js");
const run = (name: Action) => async (inv: Invocation<GatewayOpts>) =>
  (await import("./actions/gateway.js"))[name](inv);

export function registerGateway(program: Command): void {
  const gateway = program
    .command("gateway")
    .description(
      "home gateway data path: WireGuard interface, policy routing, nftables marking and kill switch",
    );

  defineCommand(gateway, {
    name: "up",
    description: "create or repair the data path once (idempotent: a second run changes nothing)",
    flags: [
      INTERFACE,
      EXIT,
      { flags: "--dry-run", help: "print the commands and the nft ruleset instead of applying them" },
      {
        flags: "--killswitch-only",
        help: "arm only the kill switch (nft table, fail-closed routes, rules): the proxy may start, its traffic fails closed until the tunnel is up",
      },
    ],
    run: run("up"),
  });

  defineCommand(gateway, {
    name: "run",
    description:
      "the gateway agent: apply, then keep it true (drift repaired within seconds, a full check every 10 s, wireguard-go restarted, a DNS-name endpoint re-resolved); SIGTERM stops watching and keeps the kill switch",
    flags: [INTERFACE, EXIT],
    run: run("run"),
  });

  defineCommand(gateway, {
    name: "down",
    description:
      "remove the tunnel and keep the kill switch: the proxy's connections keep failing instead of leaving via the home line",
    flags: [
      INTERFACE,
      EXIT,
      { flags: "--dry-run", help: "print the commands instead of running them" },
      {
        flags: "--purge",
        help: "also remove the kill switch and restore src_valid_mark: refused while a process of the proxy's uid runs",
      },
    ],
    run: run("down"),
  });

  defineCommand(gateway, {
    name: "status",
    description:
      "what is really there: interface, handshake, counters, rules, routes, kill switch, agent; exit 1 when down",
    flags: [INTERFACE, EXIT, { flags: "--json", help: "machine-readable output" }],
    run: run("status"),
  });
}
