import { createSocket } from "node:dgram";
import { writeFileSync } from "node:fs";
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
import { planDown, planKillSwitch, planUp } from "./plan.js";
import { processesOfUid, resolveProxyUid } from "./proxy-user.js";
import { forgetRecord, readAgentReport, readRecord, recordSrcValidMark } from "./runtime.js";
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

/** The data path of this config: the proxy's uid and its client subnets (from this host's interfaces). */
export function dataPathOfConfig(config: Config): DataPath {
  return dataPathOf(
    config.gateway,
    resolveProxyUid(config.gateway),
    clientSubnets(config.proxy, interfaceAddresses()),
  );
}

/** Everything `up` and the agent need from the config and the key file; fails with one line. */
export function loadUpSpec(config: Config): { spec: UpSpec; privateKey: string } {
  const privateKey = readPrivateKeyFile(config.gateway.privateKeyFile);
  const p = dataPathOfConfig(config);
  return { spec: upSpecOf(config.gateway, p.uid, publicKeyOf(privateKey), p.clients), privateKey };
}

/**
 * Brings the data path up (or repairs it); returns the steps it ran (or would run, with dryRun). With
 * killSwitchOnly, only the kill switch: the proxy may start, its traffic fails closed until the tunnel is up.
 */
export async function gatewayUp(
  config: Config,
  opts: { dryRun?: boolean; killSwitchOnly?: boolean } = {},
): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway up");
  if (opts.killSwitchOnly) {
    const p = dataPathOfConfig(config);
    const steps = planKillSwitch(p, await stateFor(p, !!opts.dryRun));
    if (!opts.dryRun) await applyAll(steps, "gateway up", null);
    return steps;
  }
  const { spec, privateKey } = loadUpSpec(config);
  const state = await stateFor(spec, !!opts.dryRun);
  const steps = planUp(spec, state);
  if (opts.dryRun) return steps;
  if (spec.listenPort && state.wg?.listenPort !== spec.listenPort) await checkUdpPortFree(spec.listenPort);
  await applyAll(steps, "gateway up", privateKey);
  return steps;
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
  opts: { dryRun?: boolean; purge?: boolean } = {},
): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway down");
  const p = dataPathOfConfig(config);
  if (!opts.dryRun) refuseWhileAgentRuns(p.ifname, "gateway down");
  if (opts.purge && !opts.dryRun) {
    const procs = processesOfUid(p.uid);
    if (procs.length)
      throw new OperationError(
        `gateway down --purge: ${procs.length} process(es) of uid ${p.uid} still run here (${procs
          .slice(0, 3)
          .map((x) => `${x.pid} ${x.cmd.slice(0, 60)}`)
          .join(
            "; ",
          )}); without the kill switch their connections would leave via the home line: stop them first (systemctl stop wg-egress-proxy), nothing was changed`,
      );
  }
  const steps = planDown(p, await stateFor(p, !!opts.dryRun), {
    purge: opts.purge,
    srcValidMarkWas: readRecord(p.ifname).srcValidMark ?? null,
  });
  if (opts.dryRun) return steps;
  await applyAll(steps, "gateway down", null);
  if (opts.purge) forgetRecord(p.ifname);
  return steps;
}
