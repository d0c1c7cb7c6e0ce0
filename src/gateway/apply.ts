import { createSocket } from "node:dgram";
import { writeFileSync } from "node:fs";
import { pickExits } from "../config/exit-hosts.js";
import { type ExitSpec, resolveExits } from "../config/exits.js";
import type { Config } from "../config/schema.js";
import { interfaceAddresses } from "../policy/addresses.js";
import { errorMessage, OperationError } from "../util/errors.js";
import { log } from "../util/log.js";
import { run } from "../util/run.js";
import { publicKeyOf } from "../wireguard/keys.js";
import { readPrivateKeyFile, withSecretFile } from "./keyfile.js";
import {
  clientSubnets,
  type DataPath,
  dataPathOf,
  type GatewayState,
  NOTHING,
  type Step,
  type UpSpec,
  upSpecOf,
} from "./model.js";
import { planDown, planKillSwitch, planTunnel, srcValidMarkOnPurge } from "./plan.js";
import { processesOfUid, resolveProxyUid } from "./proxy-user.js";
import {
  forgetRecord,
  handOverSrcValidMark,
  readAgentReport,
  readRecord,
  recordSrcValidMark,
} from "./runtime.js";
import { observe } from "./status.js";
import { createLink, stopUserspace } from "./wireguard.js";

/** Runs plans. Every decision was made by plan.ts; this file only executes, in order, and stops at the first failure. */

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0)
    throw new OperationError(`${what} changes interfaces, routes and nftables: run it as root`);
}

/** Fails when another socket holds the UDP port WireGuard should listen on. */
async function checkUdpPortFree(port: number): Promise<void> {
  for (const type of ["udp4", "udp6"] as const) {
    const sock = createSocket({ type, ipv6Only: type === "udp6" });
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      sock.once("error", resolve);
      sock.bind(port, type === "udp4" ? "0.0.0.0" : "::", () => resolve(null));
    });
    await new Promise<void>((resolve) => sock.close(() => resolve()));
    if (err?.code === "EADDRINUSE")
      throw new OperationError(
        `UDP port ${port} (gateway.listenPort) is already in use: choose another port`,
      );
  }
}

/** Runs one step; `privateKey` is needed only by wg-config steps. */
export async function applyStep(step: Step, privateKey: string | null): Promise<void> {
  switch (step.kind) {
    case "run":
      await run(step.cmd, step.args, { input: step.input });
      return;
    case "sysctl":
      if (step.record) recordSrcValidMark(step.record.ifname, step.record.was);
      writeFileSync(`/proc/sys/${step.key.replaceAll(".", "/")}`, step.value);
      return;
    case "create-link": {
      const impl = await createLink(step.ifname, step.implementation);
      log.info({ ifname: step.ifname, implementation: impl }, "WireGuard interface created");
      return;
    }
    case "wg-config": {
      if (!privateKey) throw new Error("internal: wg-config step without a private key");
      // The key reaches wg in a short-lived 0600 file, never on a command line.
      const conf = step.conf.replace("[Interface]\n", `[Interface]\nPrivateKey = ${privateKey}\n`);
      await withSecretFile(conf, (file) => run("wg", ["syncconf", step.ifname, file]));
      return;
    }
    case "stop-userspace":
      await stopUserspace(step.ifname, step.pid);
      return;
  }
}

async function applyAll(steps: Step[], what: string, privateKey: string | null): Promise<void> {
  for (const step of steps) {
    log.info({ step: step.why }, what);
    try {
      await applyStep(step, privateKey);
    } catch (e) {
      throw new OperationError(
        `${what} failed at "${step.why}": ${errorMessage(e)} (running it again repairs)`,
      );
    }
  }
}

async function stateFor(p: DataPath, dryRun: boolean): Promise<GatewayState> {
  if (dryRun && process.getuid?.() !== 0) {
    log.warn("not root: planning against an empty host");
    return NOTHING;
  }
  return observe(p);
}

/** The exits `name` selects: that one (an unknown name is a one-line error), or all of them, first first. */
export function selectExits(config: Config, name?: string): { exits: ExitSpec[]; all: ExitSpec[] } {
  const all = resolveExits(config.gateway, config.exits);
  return { exits: pickExits(all, name), all };
}

/**
 * The data path of one exit of this config (default: the first): the proxy's uid and its client
 * subnets (from this host's interfaces).
 */
export function dataPathOfConfig(config: Config, exit?: string): DataPath {
  const { exits, all } = selectExits(config, exit);
  return dataPathOfExit(config, exits[0], all);
}

/** Every exit's data path, the first exit first. */
export function dataPathsOfConfig(config: Config): DataPath[] {
  const { all } = selectExits(config);
  return all.map((x) => dataPathOfExit(config, x, all));
}

function dataPathOfExit(config: Config, x: ExitSpec, all: ExitSpec[]): DataPath {
  return dataPathOf(
    x,
    all,
    resolveProxyUid(config.gateway),
    clientSubnets(config.proxy, interfaceAddresses()),
  );
}

/** Everything `up` and the agent need for one exit (default: the first) from the config and its key file. */
export function loadUpSpec(config: Config, exit?: string): { spec: UpSpec; privateKey: string } {
  const { exits, all } = selectExits(config, exit);
  return loadExitSpec(config, exits[0], all);
}

function loadExitSpec(config: Config, x: ExitSpec, all: ExitSpec[]): { spec: UpSpec; privateKey: string } {
  const privateKey = readPrivateKeyFile(x.privateKeyFile);
  const p = dataPathOfExit(config, x, all);
  const spec = upSpecOf(x, all, config.gateway.implementation, p.uid, publicKeyOf(privateKey), p.clients);
  return { spec, privateKey };
}

/**
 * Brings the data path of each exit up (or repairs it), the first exit first; returns the steps it ran
 * (or would run, with dryRun). With killSwitchOnly, only the kill switches: the proxy may start, its
 * traffic fails closed until the tunnels are up. Every exit's kill switch is armed before any tunnel.
 */
export async function gatewayUp(
  config: Config,
  opts: { dryRun?: boolean; killSwitchOnly?: boolean; exit?: string } = {},
): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway up");
  const { exits, all } = selectExits(config, opts.exit);
  // Every exit is planned (its key file read, its interface checked) before anything is applied: a bad
  // one changes nothing. Then every kill switch, then every tunnel.
  const plans = [];
  for (const x of exits) {
    const p = dataPathOfExit(config, x, all);
    const loaded = opts.killSwitchOnly ? null : loadExitSpec(config, x, all);
    const state = await stateFor(p, !!opts.dryRun);
    plans.push({
      killSwitch: planKillSwitch(p, state),
      tunnel: loaded ? planTunnel(loaded.spec, state) : [],
      loaded,
      state,
    });
  }
  if (!opts.dryRun) {
    for (const { loaded, state } of plans) {
      const port = loaded?.spec.listenPort;
      if (port && state.wg?.listenPort !== port) await checkUdpPortFree(port);
    }
    for (const plan of plans) await applyAll(plan.killSwitch, "gateway up", null);
    for (const { loaded, tunnel } of plans)
      if (loaded) await applyAll(tunnel, "gateway up", loaded.privateKey);
  }
  const done = [...plans.flatMap((plan) => plan.killSwitch), ...plans.flatMap((plan) => plan.tunnel)];
  return done;
}

/** Another process that would undo `down`: the agent brings the tunnel back within seconds. */
function refuseWhileAgentRuns(ifname: string, what: string): void {
  const agent = readAgentReport(ifname);
  if (agent)
    throw new OperationError(
      `${what}: the gateway agent (pid ${agent.pid}) is running and would bring ${ifname} back; stop it first (systemctl stop wg-egress-gateway)`,
    );
}

/**
 * Takes the tunnel down and keeps the kill switch; with purge the kill switch goes too — refused while
 * a process of the proxy's uid runs here, whose next connection would leave via the home line.
 */
export async function gatewayDown(
  config: Config,
  opts: { dryRun?: boolean; purge?: boolean; exit?: string } = {},
): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway down");
  const { exits, all } = selectExits(config, opts.exit);
  const paths = exits.map((x) => dataPathOfExit(config, x, all));
  if (!opts.dryRun) for (const p of paths) refuseWhileAgentRuns(p.ifname, "gateway down");
  if (opts.purge && !opts.dryRun) {
    const uid = paths[0].uid;
    const procs = processesOfUid(uid);
    if (procs.length)
      throw new OperationError(
        `gateway down --purge: ${procs.length} process(es) of uid ${uid} still run here (${procs
          .slice(0, 3)
          .map((x) => `${x.pid} ${x.cmd.slice(0, 60)}`)
          .join(
            "; ",
          )}); without the kill switch their connections would leave via the home line: stop them first (systemctl stop wg-egress-proxy), nothing was changed`,
      );
  }
  // Exits left up still need src_valid_mark=1: restore the host's value only with the last of ours.
  const stay = all.filter((x) => !exits.includes(x)).map((x) => x.interface);
  const mark = srcValidMarkOnPurge(
    paths.map((p) => readRecord(p.ifname).srcValidMark),
    stay.map((i) => readRecord(i).srcValidMark),
  );
  const done: Step[] = [];
  for (const p of paths) {
    const steps = planDown(p, await stateFor(p, !!opts.dryRun), {
      purge: opts.purge,
      srcValidMarkWas: p === paths.at(-1) ? mark.restore : null,
    });
    done.push(...steps);
    if (opts.dryRun) continue;
    await applyAll(steps, "gateway down", null);
    if (opts.purge) forgetRecord(p.ifname);
  }
  const heir = stay.find((i) => readRecord(i).srcValidMark !== undefined);
  if (opts.purge && !opts.dryRun && mark.handOver !== null && heir) handOverSrcValidMark(heir, mark.handOver);
  return done;
}
