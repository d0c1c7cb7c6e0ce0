import type { Command } from "commander";
import { gatewayDown, gatewayUp, requireRoot } from "../gateway/apply.js";
import { dataPathOf, describeStep, type Step } from "../gateway/plan.js";
import { resolveProxyUid } from "../gateway/proxy-user.js";
import { formatStatus, observe, summarize } from "../gateway/status.js";
import { addConfigOption, configFrom } from "./common.js";

interface GatewayOpts {
  config?: string;
  interface?: string;
  dryRun?: boolean;
  keepKillswitch?: boolean;
  json?: boolean;
}

function withCommon(cmd: Command): Command {
  return addConfigOption(cmd).option("-i, --interface <name>", "WireGuard interface (gateway.interface)");
}

const configOf = (o: GatewayOpts) => configFrom(o, { "gateway.interface": o.interface }).gateway;

function printPlan(steps: Step[], empty: string): void {
  process.stdout.write(steps.length ? `${steps.map(describeStep).join("\n\n")}\n` : `# ${empty}\n`);
}

export function registerGateway(program: Command): void {
  const gateway = program
    .command("gateway")
    .description(
      "home gateway data path: WireGuard interface, policy routing, nftables marking and kill switch",
    );

  withCommon(gateway.command("up"))
    .description("create or repair the data path (idempotent: a second run changes nothing)")
    .option("--dry-run", "print the commands and the nft ruleset instead of applying them")
    .action(async (o: GatewayOpts) => {
      if (!o.dryRun) requireRoot("gateway up");
      const steps = await gatewayUp(configOf(o), { dryRun: o.dryRun });
      if (o.dryRun) printPlan(steps, "nothing to do: the gateway is up as configured");
      else
        process.stdout.write(
          steps.length
            ? `gateway up: ${steps.length} change(s) applied\n`
            : "gateway up: nothing to change\n",
        );
    });

  withCommon(gateway.command("down"))
    .description(
      "remove exactly what `up` created; afterwards the proxy's traffic is no longer marked (leaves via the home line)",
    )
    .option("--dry-run", "print the commands instead of running them")
    .option("--keep-killswitch", "remove only the interface: marked traffic keeps failing closed")
    .action(async (o: GatewayOpts) => {
      if (!o.dryRun) requireRoot("gateway down");
      const steps = await gatewayDown(configOf(o), { dryRun: o.dryRun, keepKillSwitch: o.keepKillswitch });
      if (o.dryRun) printPlan(steps, "nothing to remove");
      else process.stdout.write(`gateway down: ${steps.length} change(s) applied\n`);
    });

  withCommon(gateway.command("status"))
    .description(
      "what is really there: interface, handshake, counters, rules, routes, kill switch; exit 1 when down",
    )
    .option("--json", "machine-readable output")
    .action(async (o: GatewayOpts) => {
      requireRoot("gateway status");
      const gw = configOf(o);
      const p = dataPathOf(gw, resolveProxyUid(gw));
      const st = summarize(p, await observe(p), Math.floor(Date.now() / 1000));
      process.stdout.write(o.json ? `${JSON.stringify(st, null, 2)}\n` : formatStatus(st));
      if (st.verdict === "down") process.exitCode = 1;
    });
}
