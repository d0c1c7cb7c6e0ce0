import type { Command } from "commander";
import { loadConfig } from "../config/load.js";
import { GatewayAgent } from "../gateway/agent.js";
import { dataPathOfConfig, gatewayDown, gatewayUp, loadUpSpec, requireRoot } from "../gateway/apply.js";
import type { Step } from "../gateway/model.js";
import { describeStep } from "../gateway/plan.js";
import { readAgentReport } from "../gateway/runtime.js";
import { formatStatus, observe, summarize } from "../gateway/status.js";
import { addConfigOption, configFrom } from "./common.js";

interface GatewayOpts {
  config?: string;
  interface?: string;
  dryRun?: boolean;
  killswitchOnly?: boolean;
  purge?: boolean;
  json?: boolean;
}

function withCommon(cmd: Command): Command {
  return addConfigOption(cmd).option("-i, --interface <name>", "WireGuard interface (gateway.interface)");
}

const overridesOf = (o: GatewayOpts) => ({ "gateway.interface": o.interface });
const configOf = (o: GatewayOpts) => configFrom(o, overridesOf(o));

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
    .description("create or repair the data path once (idempotent: a second run changes nothing)")
    .option("--dry-run", "print the commands and the nft ruleset instead of applying them")
    .option(
      "--killswitch-only",
      "arm only the kill switch (nft table, fail-closed routes, rules): the proxy may start, its traffic fails closed until the tunnel is up",
    )
    .action(async (o: GatewayOpts) => {
      if (!o.dryRun) requireRoot("gateway up");
      const steps = await gatewayUp(configOf(o), { dryRun: o.dryRun, killSwitchOnly: o.killswitchOnly });
      if (o.dryRun) printPlan(steps, "nothing to do: the gateway is up as configured");
      else
        process.stdout.write(
          steps.length
            ? `gateway up: ${steps.length} change(s) applied\n`
            : "gateway up: nothing to change\n",
        );
    });

  withCommon(gateway.command("run"))
    .description(
      "the gateway agent: apply, then keep it true (drift repaired within seconds, a full check every 10 s, wireguard-go restarted, a DNS-name endpoint re-resolved); SIGTERM stops watching and keeps the kill switch",
    )
    .action(async (o: GatewayOpts) => {
      requireRoot("gateway run");
      configOf(o); // log level, and a bad config stops here with one line
      const agent = new GatewayAgent({ load: () => loadUpSpec(loadConfig(o.config, overridesOf(o))) });
      await agent.start();
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve).once("SIGINT", resolve);
      });
      await agent.stop();
    });

  withCommon(gateway.command("down"))
    .description(
      "remove the tunnel and keep the kill switch: the proxy's connections keep failing instead of leaving via the home line",
    )
    .option("--dry-run", "print the commands instead of running them")
    .option(
      "--purge",
      "also remove the kill switch and restore src_valid_mark: refused while a process of the proxy's uid runs",
    )
    .action(async (o: GatewayOpts) => {
      if (!o.dryRun) requireRoot("gateway down");
      const steps = await gatewayDown(configOf(o), { dryRun: o.dryRun, purge: o.purge });
      if (o.dryRun) printPlan(steps, "nothing to remove");
      else
        process.stdout.write(
          `gateway down: ${steps.length} change(s) applied${o.purge ? "" : "; the kill switch stays (--purge removes it)"}\n`,
        );
    });

  withCommon(gateway.command("status"))
    .description(
      "what is really there: interface, handshake, counters, rules, routes, kill switch, agent; exit 1 when down",
    )
    .option("--json", "machine-readable output")
    .action(async (o: GatewayOpts) => {
      requireRoot("gateway status");
      const p = dataPathOfConfig(configOf(o));
      const st = summarize(p, await observe(p), Math.floor(Date.now() / 1000));
      const agent = readAgentReport(p.ifname);
      process.stdout.write(
        o.json ? `${JSON.stringify({ ...st, agent }, null, 2)}\n` : formatStatus(st, agent),
      );
      if (st.verdict === "down") process.exitCode = 1;
    });
}
