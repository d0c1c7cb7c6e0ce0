import { createInterface } from "node:readline/promises";
import {
  type ExitTarget,
  exitsOf,
  peerKey,
  pickExit,
  pickExits,
  sshTargetKey,
  targetOf,
} from "../../config/exit-hosts.js";
import { exitSchema } from "../../config/exit-schema.js";
import type { ExitSpec } from "../../config/exits.js";
import { setPath } from "../../config/load.js";
import type { Config } from "../../config/schema.js";
import { failed } from "../../doctor/check.js";
import { formatResults } from "../../doctor/format.js";
import { checkExit } from "../../exit/check.js";
import { renderCloudInit } from "../../exit/cloud-init.js";
import { setConfigValues } from "../../exit/config-edit.js";
import { detectHomeIp } from "../../exit/home-ip.js";
import { renderExitHost } from "../../exit/host.js";
import { exitKeysFromStore } from "../../exit/keys.js";
import { Progress } from "../../exit/progress.js";
import { HetznerClient } from "../../exit/providers/hetzner/client.js";
import { deprovision } from "../../exit/providers/hetzner/deprovision.js";
import { updateHomeIp } from "../../exit/providers/hetzner/home-ip.js";
import { checkHomeSource, formatCost } from "../../exit/providers/hetzner/plan.js";
import { endpointOf, provision } from "../../exit/providers/hetzner/provision.js";
import { findServer, type HetznerContext } from "../../exit/providers/hetzner/resources.js";
import { status } from "../../exit/providers/hetzner/status.js";
import { hcloudToken } from "../../exit/providers/hetzner/token.js";
import type { Server } from "../../exit/providers/hetzner/types.js";
import { renderInstallScript, runOverSsh } from "../../exit/ssh-install.js";
import { exitSecretsOf, withExitSecrets } from "../../secrets/data.js";
import { sshTargetOf } from "../../secrets/rotate.js";
import { openSecretsStore } from "../../secrets/store.js";
import { OperationError, UsageError } from "../../util/errors.js";
import { parseHostPort } from "../../util/hostport.js";
import { publicKeyOf } from "../../wireguard/keys.js";
import type { Invocation } from "../command.js";

export interface ExitOpts {
  homeIp?: string[];
  yes?: boolean;
  setEndpoint?: boolean;
  format?: string;
  json?: boolean;
  resolve?: string;
  exit?: string;
}

type Run = Invocation<ExitOpts>;

const print = (line: string) => process.stdout.write(`${line}\n`);

/**
 * The exits a command works on, with the flags that set `exit.*` keys applied to each (the first exit
 * got them with the `exit:` section; the others take their settings from their own).
 */
function targets(config: Config, inv: Run, xs: ExitSpec[]): ExitTarget[] {
  const flags = Object.entries(inv.source.overrides).filter(([k]) => k.startsWith("exit."));
  return xs.map((x) => {
    const t = targetOf(config, x);
    if (x.primary || !flags.length) return t;
    const raw = structuredClone(t.host) as Record<string, unknown>;
    for (const [k, v] of flags) setPath(raw, k.slice("exit.".length), v);
    return { spec: x, host: exitSchema.parse(raw) };
  });
}

/** The one exit a command that changes an exit works on (--exit, or the only one). */
const oneTarget = (config: Config, inv: Run, command: string): ExitTarget =>
  targets(config, inv, [pickExit(exitsOf(config), inv.opts.exit, command)])[0];

/** The exits a read-only command shows (--exit, or all of them). */
const allTargets = (config: Config, inv: Run): ExitTarget[] =>
  targets(config, inv, pickExits(exitsOf(config), inv.opts.exit));

async function hetzner(config: Config, t: ExitTarget): Promise<HetznerContext> {
  const progress = new Progress();
  const endpoint = process.env.HCLOUD_ENDPOINT || undefined;
  // The endpoint is checked before the token is looked up: a typo fails the same way with or without one.
  if (endpoint) new HetznerClient({ token: "", endpoint });
  const { token, source } = await hcloudToken(config.secrets);
  const client = new HetznerClient({
    token,
    tokenSource: source,
    endpoint,
    onRateLimited: (ms, attempt) =>
      progress.note(
        `rate limited by the Hetzner API: retrying in ${(ms / 1000).toFixed(1)} s (attempt ${attempt})`,
      ),
  });
  return { client, exit: t.host, progress, out: print };
}

/** --home-ip values, checked before anything else happens (no API call with a bogus value). */
function homeIpFlags(o: ExitOpts): string[] {
  return (o.homeIp ?? []).map((ip) => checkHomeSource(ip, "--home-ip"));
}

/**
 * Where SSH may come from: --home-ip, else exit.sshAllowFrom (configured ranges are never overwritten),
 * else the detected home IP.
 */
async function sshSources(t: ExitTarget, homeIps: string[]): Promise<string[]> {
  if (homeIps.length) return homeIps;
  if (t.host.sshAllowFrom.length) return t.host.sshAllowFrom;
  return [checkHomeSource(await detectHomeIp(t.host.homeIpUrls), "the detected home IP", 1)];
}

/**
 * Records the exit for the gateway: its endpoint (config and secrets store) and public key, and, for a new
 * Hetzner exit that has login keys, its ssh.target (so secrets rotate and exit check can reach it).
 */
async function recordEndpoint(
  config: Config,
  t: ExitTarget,
  file: string,
  endpoint: string,
  server?: Server,
): Promise<void> {
  const values: Record<string, string> = { [peerKey(config, t.spec, "endpoint")]: endpoint };
  const store = openSecretsStore(config.secrets);
  if (store.exists()) {
    const data = await store.read();
    const own = exitSecretsOf(data, t.spec);
    if (own) {
      values[peerKey(config, t.spec, "publicKey")] = publicKeyOf(own.privateKey);
      if (own.endpoint !== endpoint) await store.write(withExitSecrets(data, t.spec, { ...own, endpoint }));
    }
  }
  const ip = server?.public_net.ipv4?.ip;
  if (ip && !t.host.ssh.target && !t.host.noSsh) values[sshTargetKey(config, t.spec)] = `root@${ip}`;
  const changed = setConfigValues(file, values);
  print(
    changed.length
      ? `recorded in ${file}: ${changed.map((k) => `${k} = ${values[k]}`).join(", ")}`
      : `${file} already has endpoint ${endpoint}`,
  );
}

/** After deprovision: the gateway must not keep pointing at an address that may go to someone else. */
async function forgetExit(config: Config, t: ExitTarget, file: string, server: Server): Promise<void> {
  const ip = server.public_net.ipv4?.ip;
  if (!ip) return;
  const hostOf = (ep: string | undefined) => {
    const hp = ep ? parseHostPort(ep) : undefined;
    return typeof hp === "object" ? hp.host : undefined;
  };
  const values: Record<string, null> = {};
  if (t.spec.peer.endpoint?.host === ip) values[peerKey(config, t.spec, "endpoint")] = null;
  if (t.host.ssh.target?.split("@").pop() === ip) values[sshTargetKey(config, t.spec)] = null;
  const changed = Object.keys(values).length ? setConfigValues(file, values) : [];
  if (changed.length) print(`removed from ${file}: ${changed.join(", ")} (pointed at the deleted ${ip})`);
  const store = openSecretsStore(config.secrets);
  if (store.exists()) {
    const data = await store.read();
    const own = exitSecretsOf(data, t.spec);
    if (own && hostOf(own.endpoint) === ip) {
      await store.write(withExitSecrets(data, t.spec, { ...own, endpoint: undefined }));
      print(`removed the endpoint ${own.endpoint} from ${store.file}`);
    }
  }
}

/** The keys the exit should run with: the store's, else what the config says. */
async function expectedKeys(
  config: Config,
  t: ExitTarget,
): Promise<{ exitPublicKey?: string; gatewayPublicKey?: string }> {
  const store = openSecretsStore(config.secrets);
  if (store.exists() && exitSecretsOf(await store.read(), t.spec)) {
    const keys = await exitKeysFromStore(config, t);
    return { exitPublicKey: publicKeyOf(keys.privateKey), gatewayPublicKey: keys.gatewayPublicKey };
  }
  return { exitPublicKey: t.spec.peer.publicKey, gatewayPublicKey: t.host.gatewayPublicKey };
}

async function confirmOnTty(what: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`delete ${what}? [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** With several exits, each exit's part of the output starts with its name (one exit: as before). */
function heading(config: Config, t: ExitTarget): void {
  if (exitsOf(config).length > 1) print(`exit ${t.spec.name}:`);
}

export async function render(inv: Run): Promise<void> {
  const { opts: o, config: load } = inv;
  if (o.format !== "cloud-init" && o.format !== "script")
    throw new UsageError(`--format ${o.format}: expected cloud-init or script`);
  const config = await load();
  const t = oneTarget(config, inv, "exit render");
  const host = renderExitHost(t.host, await exitKeysFromStore(config, t));
  const e = t.host;
  if (o.format === "cloud-init" && !e.noSsh && !e.sshAuthorizedKeys.length && !e.hetzner.sshKeyNames.length)
    process.stderr.write(
      "note: no exit.sshAuthorizedKeys: only keys your provider installs can log into this exit (exit.noSsh: true if none should)\n",
    );
  process.stdout.write(o.format === "script" ? host.setupScript : renderCloudInit(t.host, host));
}

export async function install(inv: Run): Promise<void> {
  const config = await inv.config();
  const t = oneTarget(config, inv, "exit install");
  const target = sshTargetOf(t.host);
  if (!target)
    throw new UsageError(
      `where to? pass --ssh root@HOST (or set ${t.spec.primary ? "exit.ssh.target" : `exits[${t.spec.index}].exit.ssh.target`})`,
    );
  const host = renderExitHost(t.host, await exitKeysFromStore(config, t));
  const script = renderInstallScript(t.host, host, { dir: t.host.ssh.dir, system: t.host.ssh.system });
  process.stdout.write(await runOverSsh(target, script));
}

export async function check(inv: Run): Promise<void> {
  const { opts: o, configFile } = inv;
  const config = await inv.config();
  // --ssh names one machine: with several exits it needs --exit too.
  const list =
    inv.source.overrides["exit.ssh.target"] !== undefined
      ? [oneTarget(config, inv, "exit check --ssh")]
      : allTargets(config, inv);
  const reachable = list.filter((t) => sshTargetOf(t.host));
  if (!reachable.length) throw new UsageError("which exit? pass --ssh root@HOST (or set exit.ssh.target)");
  const several = list.length > 1;
  const results = [];
  for (const t of reachable) {
    const found = await checkExit(t.host, sshTargetOf(t.host)!, {
      ...(await expectedKeys(config, t)),
      resolveName: o.resolve ?? "deb.debian.org",
      install: `wg-egress exit install --config ${configFile}${several ? ` --exit ${t.spec.name}` : ""}`,
    });
    results.push(...(several ? found.map((r) => ({ ...r, name: `exit ${t.spec.name}: ${r.name}` })) : found));
  }
  process.stdout.write(
    o.json
      ? `${JSON.stringify(results, null, 2)}\n`
      : formatResults(results, !!process.stdout.isTTY && !process.env.NO_COLOR),
  );
  const skipped = list.filter((t) => !sshTargetOf(t.host)).map((t) => t.spec.name);
  if (skipped.length && !o.json) print(`not checked (no ssh.target): ${skipped.join(", ")}`);
  if (failed(results)) process.exitCode = 1;
}

export async function provisionExit(inv: Run): Promise<void> {
  const { opts: o, configFile } = inv;
  const homeIps = homeIpFlags(o);
  const config = await inv.config();
  const t = oneTarget(config, inv, "exit provision");
  const ctx = await hetzner(config, t);
  const sources = await sshSources(t, homeIps);
  const r = await provision(ctx, sources, async () =>
    renderCloudInit(t.host, renderExitHost(t.host, await exitKeysFromStore(config, t))),
  );
  print(
    `${r.created ? "created" : "found"} server ${r.server.name} (id ${r.server.id}) ${r.server.status}, endpoint ${r.endpoint}`,
  );
  print(`firewall ${r.firewall.name}: udp ${t.host.listenPort} open, ssh from ${sources.join(", ")}`);
  if (o.setEndpoint !== false) await recordEndpoint(config, t, configFile, r.endpoint, r.server);
  print(formatCost(t.host.hetzner.serverType, r.cost));
}

export async function exitStatus(inv: Run): Promise<void> {
  const config = await inv.config();
  for (const t of allTargets(config, inv)) {
    heading(config, t);
    if (!(await status(await hetzner(config, t)))) process.exitCode = 1;
  }
}

export async function setEndpoint(inv: Run): Promise<void> {
  const {
    args: [endpoint],
    configFile,
  } = inv;
  // The argument is checked as an argument, not blamed on the config file it is going into.
  const hp = endpoint === undefined ? undefined : parseHostPort(endpoint);
  if (typeof hp === "string" || hp?.port === 0 || hp?.host === "0.0.0.0")
    throw new UsageError(
      `set-endpoint ${JSON.stringify(endpoint)}: ${typeof hp === "string" ? hp : "expected the exit's address and port"}, e.g. 203.0.113.10:51820`,
    );
  const config = await inv.config();
  const t = oneTarget(config, inv, "exit set-endpoint");
  let ep = endpoint;
  if (!ep) {
    const ctx = await hetzner(config, t);
    const server = await findServer(ctx);
    if (!server)
      throw new OperationError(
        `no exit server found (${t.host.hetzner.serverName}): pass the endpoint (HOST:PORT) or run wg-egress exit provision`,
      );
    ep = endpointOf(server, t.host.listenPort);
  }
  await recordEndpoint(config, t, configFile, ep);
}

export async function updateHomeIpRule(inv: Run): Promise<void> {
  const homeIps = homeIpFlags(inv.opts);
  const config = await inv.config();
  const t = oneTarget(config, inv, "exit update-home-ip");
  const ctx = await hetzner(config, t);
  const configured = !homeIps.length && t.host.sshAllowFrom.length > 0;
  const r = await updateHomeIp(ctx, await sshSources(t, homeIps));
  const from = `${r.after.join(", ")}${configured ? " (exit.sshAllowFrom)" : ""}`;
  print(
    r.changed
      ? `updated: SSH allowed from ${from} (was ${r.before.join(", ") || "none"})`
      : `unchanged: SSH allowed from ${from}`,
  );
}

export async function deprovisionExit(inv: Run): Promise<void> {
  const { opts: o, configFile } = inv;
  if (!o.yes && !process.stdin.isTTY)
    throw new UsageError("refusing to delete without confirmation: pass --yes (stdin is not a terminal)");
  const config = await inv.config();
  const t = oneTarget(config, inv, "exit deprovision");
  const r = await deprovision(await hetzner(config, t), async (what) => o.yes || confirmOnTty(what));
  if (r.server) await forgetExit(config, t, configFile, r.server);
}
