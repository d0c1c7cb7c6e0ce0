import { loadConfig } from "../../config/load.js";
import { GatewayAgent } from "../../gateway/agent.js";
import {
  dataPathOfConfig,
  gatewayDown,
  gatewayUp,
  loadUpSpec,
  requireRoot,
  selectExits,
} from "../../gateway/apply.js";
import type { Step } from "../../gateway/model.js";
import { describeStep } from "../../gateway/plan.js";
import { readAgentReport } from "../../gateway/runtime.js";
import { formatStatus, observe, summarize } from "../../gateway/status.js";
import type { Invocation } from "../command.js";

export interface GatewayOpts {
  dryRun?: boolean;
  killswitchOnly?: boolean;
  purge?: boolean;
  json?: boolean;
  exit?: string;
}

type Run = Invocation<GatewayOpts>;

function printPlan(steps: Step[], empty: string): void {
  process.stdout.write(steps.length ? `${steps.map(describeStep).join("\n\n")}\n` : `# ${empty}\n`);
}

export async function up({ opts: o, config }: Run): Promise<void> {
  if (!o.dryRun) requireRoot("gateway up");
  const steps = await gatewayUp(await config(), {
    dryRun: o.dryRun,
    killSwitchOnly: o.killswitchOnly,
    exit: o.exit,
  });
  if (o.dryRun) printPlan(steps, "nothing to do: the gateway is up as configured");
  else
    process.stdout.write(
      steps.length ? `gateway up: ${steps.length} change(s) applied\n` : "gateway up: nothing to change\n",
    );
}

export async function run({ opts: o, config, source }: Run): Promise<void> {
  requireRoot("gateway run");
  // Log level; a bad config or an unknown exit stops here with one line.
  const { exits } = selectExits(await config(), o.exit);
  // One agent per exit (all of them, or the one --exit names), each with its own watchers and report.
  // Re-read at every check: the config and the key file may change while the agent runs (secrets rotate).
  const agents: GatewayAgent[] = [];
  try {
    for (const x of exits) {
      const agent = new GatewayAgent({
        exit: x.name,
        load: () => loadUpSpec(loadConfig(source.file, source.overrides), x.name),
      });
      await agent.start();
      agents.push(agent);
    }
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve).once("SIGINT", resolve);
    });
  } finally {
    for (const a of agents) await a.stop();
  }
}

export async function down({ opts: o, config }: Run): Promise<void> {
  if (!o.dryRun) requireRoot("gateway down");
  const steps = await gatewayDown(await config(), { dryRun: o.dryRun, purge: o.purge, exit: o.exit });
  if (o.dryRun) printPlan(steps, "nothing to remove");
  else
    process.stdout.write(
      `gateway down: ${steps.length} change(s) applied${o.purge ? "" : "; the kill switch stays (--purge removes it)"}\n`,
    );
}

export async function status({ opts: o, config }: Run): Promise<void> {
  requireRoot("gateway status");
  const p = dataPathOfConfig(await config(), o.exit);
  const st = summarize(p, await observe(p), Math.floor(Date.now() / 1000));
  const agent = readAgentReport(p.ifname);
  process.stdout.write(o.json ? `${JSON.stringify({ ...st, agent }, null, 2)}\n` : formatStatus(st, agent));
  if (st.verdict === "down") process.exitCode = 1;
}
