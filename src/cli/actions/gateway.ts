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
import { errorMessage, OperationError } from "../../util/errors.js";
import { log } from "../../util/log.js";
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

/** How often `gateway run` tries again to start the agent of an exit whose config or key could not be read. */
const RETRY_START_MS = 10_000;

export async function run({ opts: o, config, source }: Run): Promise<void> {
  requireRoot("gateway run");
  // Log level; a bad config or an unknown exit stops here with one line.
  const { exits } = selectExits(await config(), o.exit);
  // One agent per exit (all of them, or the one --exit names), each with its own watchers and report.
  // Re-read at every check: the config and the key file may change while the agent runs (secrets rotate).
  const agents: GatewayAgent[] = [];
  let stopping = false;
  const start = async (name: string) => {
    const agent = new GatewayAgent({
      exit: name,
      load: () => loadUpSpec(loadConfig(source.file, source.overrides), name),
    });
    await agent.start(); // throws before changing anything
    if (stopping) await agent.stop();
    else agents.push(agent);
  };
  // With several exits, one that cannot start (its key file missing, say) must not leave the others
  // unrepaired: they run, and its start is tried again until it works.
  const waiting = new Set<string>();
  for (const x of exits)
    await start(x.name).catch((e: unknown) => {
      if (exits.length === 1) throw e;
      waiting.add(x.name);
      log.error({ exit: x.name, err: errorMessage(e) }, "exit agent not started; the other exits are served");
    });
  if (!agents.length)
    throw new OperationError(`no exit agent could start (${[...waiting].join(", ")}): see the log`);
  const retry = setInterval(() => {
    for (const name of waiting) {
      waiting.delete(name); // one attempt at a time per exit
      start(name).then(
        () => log.info({ exit: name }, "exit agent started"),
        () => waiting.add(name),
      );
    }
  }, RETRY_START_MS);
  try {
    await new Promise<void>((resolve) => {
      process.once("SIGTERM", resolve).once("SIGINT", resolve);
    });
  } finally {
    stopping = true;
    clearInterval(retry);
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
  const c = await config();
  const { exits, all } = selectExits(c, o.exit);
  const now = Math.floor(Date.now() / 1000);
  const shown = [];
  for (const x of exits) {
    const p = dataPathOfConfig(c, x.name);
    const st = summarize(p, await observe(p), now);
    shown.push({ exit: x.name, st, agent: readAgentReport(p.ifname) });
    if (st.verdict === "down") process.exitCode = 1;
  }
  // One exit: the output as it always was; several: each exit's under its name.
  if (all.length === 1) {
    const [{ st, agent }] = shown;
    process.stdout.write(o.json ? `${JSON.stringify({ ...st, agent }, null, 2)}\n` : formatStatus(st, agent));
  } else if (o.json)
    process.stdout.write(
      `${JSON.stringify(
        shown.map(({ exit, st, agent }) => ({ exit, ...st, agent })),
        null,
        2,
      )}\n`,
    );
  else
    process.stdout.write(
      shown.map(({ exit, st, agent }) => `exit ${exit}:\n${formatStatus(st, agent)}`).join("\n"),
    );
}
