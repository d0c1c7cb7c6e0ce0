import { createSocket } from "node:dgram";
import { writeFileSync } from "node:fs";
import type { GatewayConfig } from "../config/gateway-schema.js";
import { errorMessage, UserError } from "../util/errors.js";
import { log } from "../util/log.js";
import { run } from "../util/run.js";
import { publicKeyOf } from "../wireguard/keys.js";
import { readPrivateKeyFile, withSecretFile } from "./keyfile.js";
import {
  type DataPath,
  dataPathOf,
  type GatewayState,
  planDown,
  planUp,
  type Step,
  upSpecOf,
} from "./plan.js";
import { resolveProxyUid } from "./proxy-user.js";
import { observe } from "./status.js";
import { createLink, stopUserspace } from "./wireguard.js";

/** Runs plans. Every decision was made by plan.ts; this file only executes, in order, and stops at the first failure. */

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0)
    throw new UserError(`${what} changes interfaces, routes and nftables: run it as root`, 1);
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
      throw new UserError(`UDP port ${port} (gateway.listenPort) is already in use: choose another port`, 1);
  }
}

async function applyStep(step: Step, privateKey: string | null): Promise<void> {
  switch (step.kind) {
    case "run":
      await run(step.cmd, step.args, { input: step.input });
      return;
    case "sysctl":
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
      throw new UserError(
        `${what} failed at "${step.why}": ${errorMessage(e)} (running it again repairs)`,
        1,
      );
    }
  }
}

/** An empty state: what `--dry-run` plans against when it cannot read the real one (not root). */
export const NOTHING: GatewayState = {
  link: null,
  userspacePid: null,
  wg: null,
  rules4: [],
  rules6: [],
  routes4: [],
  routes6: [],
  nft: null,
  srcValidMark: null,
};

async function stateFor(p: DataPath, dryRun: boolean): Promise<GatewayState> {
  if (dryRun && process.getuid?.() !== 0) {
    log.warn("not root: planning against an empty host");
    return NOTHING;
  }
  return observe(p);
}

/** Brings the data path up (or repairs it); returns the steps it ran (or would run, with dryRun). */
export async function gatewayUp(gw: GatewayConfig, opts: { dryRun?: boolean } = {}): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway up");
  const privateKey = readPrivateKeyFile(gw.privateKeyFile);
  const spec = upSpecOf(gw, resolveProxyUid(gw), publicKeyOf(privateKey));
  const state = await stateFor(spec, !!opts.dryRun);
  const steps = planUp(spec, state);
  if (opts.dryRun) return steps;
  if (spec.listenPort && state.wg?.listenPort !== spec.listenPort) await checkUdpPortFree(spec.listenPort);
  await applyAll(steps, "gateway up", privateKey);
  return steps;
}

export async function gatewayDown(
  gw: GatewayConfig,
  opts: { dryRun?: boolean; keepKillSwitch?: boolean } = {},
): Promise<Step[]> {
  if (!opts.dryRun) requireRoot("gateway down");
  const p = dataPathOf(gw, resolveProxyUid(gw));
  const steps = planDown(p, await stateFor(p, !!opts.dryRun), opts.keepKillSwitch);
  if (!opts.dryRun) await applyAll(steps, "gateway down", null);
  return steps;
}
