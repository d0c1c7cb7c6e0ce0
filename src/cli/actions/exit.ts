import { createInterface } from "node:readline/promises";
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
}

type Run = Invocation<ExitOpts>;

const print = (line: string) => process.stdout.write(`${line}\n`);

async function hetzner(config: Config): Promise<HetznerContext> {
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
  return { client, exit: config.exit, progress, out: print };
}

/** --home-ip values, checked before anything else happens (no API call with a bogus value). */
function homeIpFlags(o: ExitOpts): string[] {
  return (o.homeIp ?? []).map((ip) => checkHomeSource(ip, "--home-ip"));
}

/**
 * Where SSH may come from: --home-ip, else exit.sshAllowFrom (configured ranges are never overwritten),
 * else the detected home IP.
 */
async function sshSources(config: Config, homeIps: string[]): Promise<string[]> {
  if (homeIps.length) return homeIps;
  if (config.exit.sshAllowFrom.length) return config.exit.sshAllowFrom;
  return [checkHomeSource(await detectHomeIp(config.exit.homeIpUrls), "the detected home IP", 1)];
}

/**
 * Records the exit for the gateway: its endpoint (config and secrets store) and public key, and, for a new
 * Hetzner exit that has login keys, exit.ssh.target (so secrets rotate and exit check can reach it).
 */
async function recordEndpoint(
  config: Config,
  file: string,
  endpoint: string,
  server?: Server,
): Promise<void> {
  const values: Record<string, string> = { "gateway.peer.endpoint": endpoint };
  const store = openSecretsStore(config.secrets);
  if (store.exists()) {
    const data = await store.read();
    values["gateway.peer.publicKey"] = publicKeyOf(data.exit.privateKey);
    if (data.endpoint !== endpoint) await store.write({ ...data, endpoint });
  }
  const ip = server?.public_net.ipv4?.ip;
  if (ip && !config.exit.ssh.target && !config.exit.noSsh) values["exit.ssh.target"] = `root@${ip}`;
  const changed = setConfigValues(file, values);
  print(
    changed.length
      ? `recorded in ${file}: ${changed.map((k) => `${k} = ${values[k]}`).join(", ")}`
      : `${file} already has endpoint ${endpoint}`,
  );
}

/** After deprovision: the gateway must not keep pointing at an address that may go to someone else. */
async function forgetExit(config: Config, file: string, server: Server): Promise<void> {
  const ip = server.public_net.ipv4?.ip;
  if (!ip) return;
  const hostOf = (ep: string | undefined) => {
    const hp = ep ? parseHostPort(ep) : undefined;
    return typeof hp === "object" ? hp.host : undefined;
  };
  const values: Record<string, null> = {};
  if (config.gateway.peer.endpoint?.host === ip) values["gateway.peer.endpoint"] = null;
  if (config.exit.ssh.target?.split("@").pop() === ip) values["exit.ssh.target"] = null;
  const changed = Object.keys(values).length ? setConfigValues(file, values) : [];
  if (changed.length) print(`removed from ${file}: ${changed.join(", ")} (pointed at the deleted ${ip})`);
  const store = openSecretsStore(config.secrets);
  if (store.exists()) {
    const data = await store.read();
    if (hostOf(data.endpoint) === ip) {
      const { endpoint: _gone, ...rest } = data;
      await store.write(rest);
      print(`removed the endpoint ${data.endpoint} from ${store.file}`);
    }
  }
}

/** The keys the exit should run with: the store's, else what the config says. */
async function expectedKeys(config: Config): Promise<{ exitPublicKey?: string; gatewayPublicKey?: string }> {
  const store = openSecretsStore(config.secrets);
  if (store.exists()) {
    const data = await store.read();
    return {
      exitPublicKey: publicKeyOf(data.exit.privateKey),
      gatewayPublicKey: config.exit.gatewayPublicKey ?? publicKeyOf(data.gateway.privateKey),
    };
  }
  return { exitPublicKey: config.gateway.peer.publicKey, gatewayPublicKey: config.exit.gatewayPublicKey };
}

async function confirmOnTty(what: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`delete ${what}? [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

export async function render({ opts: o, config: load }: Run): Promise<void> {
  if (o.format !== "cloud-init" && o.format !== "script")
    throw new UsageError(`--format ${o.format}: expected cloud-init or script`);
  const config = await load();
  const host = renderExitHost(config.exit, await exitKeysFromStore(config));
  const e = config.exit;
  if (o.format === "cloud-init" && !e.noSsh && !e.sshAuthorizedKeys.length && !e.hetzner.sshKeyNames.length)
    process.stderr.write(
      "note: no exit.sshAuthorizedKeys: only keys your provider installs can log into this exit (exit.noSsh: true if none should)\n",
    );
  process.stdout.write(o.format === "script" ? host.setupScript : renderCloudInit(config.exit, host));
}

export async function install({ config: load }: Run): Promise<void> {
  const config = await load();
  const target = sshTargetOf(config);
  if (!target) throw new UsageError("where to? pass --ssh root@HOST (or set exit.ssh.target)");
  const host = renderExitHost(config.exit, await exitKeysFromStore(config));
  const script = renderInstallScript(config.exit, host, {
    dir: config.exit.ssh.dir,
    system: config.exit.ssh.system,
  });
  process.stdout.write(await runOverSsh(target, script));
}

export async function check({ opts: o, config: load, configFile }: Run): Promise<void> {
  const config = await load();
  const target = sshTargetOf(config);
  if (!target) throw new UsageError("which exit? pass --ssh root@HOST (or set exit.ssh.target)");
  const results = await checkExit(config.exit, target, {
    ...(await expectedKeys(config)),
    resolveName: o.resolve ?? "deb.debian.org",
    install: `wg-egress exit install --config ${configFile}`,
  });
  process.stdout.write(
    o.json
      ? `${JSON.stringify(results, null, 2)}\n`
      : formatResults(results, !!process.stdout.isTTY && !process.env.NO_COLOR),
  );
  if (failed(results)) process.exitCode = 1;
}

export async function provisionExit({ opts: o, config: load, configFile }: Run): Promise<void> {
  const homeIps = homeIpFlags(o);
  const config = await load();
  const ctx = await hetzner(config);
  const sources = await sshSources(config, homeIps);
  const r = await provision(ctx, sources, async () =>
    renderCloudInit(config.exit, renderExitHost(config.exit, await exitKeysFromStore(config))),
  );
  print(
    `${r.created ? "created" : "found"} server ${r.server.name} (id ${r.server.id}) ${r.server.status}, endpoint ${r.endpoint}`,
  );
  print(`firewall ${r.firewall.name}: udp ${config.exit.listenPort} open, ssh from ${sources.join(", ")}`);
  if (o.setEndpoint !== false) await recordEndpoint(config, configFile, r.endpoint, r.server);
  print(formatCost(config.exit.hetzner.serverType, r.cost));
}

export async function exitStatus({ config: load }: Run): Promise<void> {
  if (!(await status(await hetzner(await load())))) process.exitCode = 1;
}

export async function setEndpoint({ args: [endpoint], config: load, configFile }: Run): Promise<void> {
  // The argument is checked as an argument, not blamed on the config file it is going into.
  const hp = endpoint === undefined ? undefined : parseHostPort(endpoint);
  if (typeof hp === "string" || hp?.port === 0 || hp?.host === "0.0.0.0")
    throw new UsageError(
      `set-endpoint ${JSON.stringify(endpoint)}: ${typeof hp === "string" ? hp : "expected the exit's address and port"}, e.g. 203.0.113.10:51820`,
    );
  const config = await load();
  let ep = endpoint;
  if (!ep) {
    const ctx = await hetzner(config);
    const server = await findServer(ctx);
    if (!server)
      throw new OperationError(
        "no exit server found: pass the endpoint (HOST:PORT) or run wg-egress exit provision",
      );
    ep = endpointOf(server, config.exit.listenPort);
  }
  await recordEndpoint(config, configFile, ep);
}

export async function updateHomeIpRule({ opts: o, config: load }: Run): Promise<void> {
  const homeIps = homeIpFlags(o);
  const config = await load();
  const ctx = await hetzner(config);
  const configured = !homeIps.length && config.exit.sshAllowFrom.length > 0;
  const r = await updateHomeIp(ctx, await sshSources(config, homeIps));
  const from = `${r.after.join(", ")}${configured ? " (exit.sshAllowFrom)" : ""}`;
  print(
    r.changed
      ? `updated: SSH allowed from ${from} (was ${r.before.join(", ") || "none"})`
      : `unchanged: SSH allowed from ${from}`,
  );
}

export async function deprovisionExit({ opts: o, config: load, configFile }: Run): Promise<void> {
  if (!o.yes && !process.stdin.isTTY)
    throw new UsageError("refusing to delete without confirmation: pass --yes (stdin is not a terminal)");
  const config = await load();
  const r = await deprovision(await hetzner(config), async (what) => o.yes || confirmOnTty(what));
  if (r.server) await forgetExit(config, configFile, r.server);
}
