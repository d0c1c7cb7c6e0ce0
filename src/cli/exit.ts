import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import type { Config } from "../config/schema.js";
import { failed } from "../doctor/check.js";
import { formatResults } from "../doctor/format.js";
import { checkExit } from "../exit/check.js";
import { renderCloudInit } from "../exit/cloud-init.js";
import { setConfigValues } from "../exit/config-edit.js";
import { detectHomeIp } from "../exit/home-ip.js";
import { renderExitHost } from "../exit/host.js";
import { exitKeysFromStore } from "../exit/keys.js";
import { Progress } from "../exit/progress.js";
import { HetznerClient } from "../exit/providers/hetzner/client.js";
import { deprovision } from "../exit/providers/hetzner/deprovision.js";
import { updateHomeIp } from "../exit/providers/hetzner/home-ip.js";
import { checkHomeSource, formatCost } from "../exit/providers/hetzner/plan.js";
import { endpointOf, provision } from "../exit/providers/hetzner/provision.js";
import { findServer, type HetznerContext } from "../exit/providers/hetzner/resources.js";
import { status } from "../exit/providers/hetzner/status.js";
import { hcloudToken } from "../exit/providers/hetzner/token.js";
import type { Server } from "../exit/providers/hetzner/types.js";
import { renderInstallScript, runOverSsh } from "../exit/ssh-install.js";
import { sshTargetOf } from "../secrets/rotate.js";
import { openSecretsStore } from "../secrets/store.js";
import { UserError } from "../util/errors.js";
import { parseHostPort } from "../util/hostport.js";
import { publicKeyOf } from "../wireguard/keys.js";
import { addConfigOption, collect, configFrom } from "./common.js";

interface Opts {
  config?: string;
  gatewayPublicKey?: string;
  homeIp?: string[];
  location?: string;
  serverType?: string;
  image?: string;
  yes?: boolean;
  setEndpoint?: boolean;
  format?: string;
  ssh?: string;
  port?: string;
  identity?: string;
  sshOption?: string[];
  dir?: string;
  system?: boolean;
}

const print = (line: string) => process.stdout.write(`${line}\n`);

function loadExitConfig(o: Opts): Config {
  return configFrom(o, {
    "exit.gatewayPublicKey": o.gatewayPublicKey,
    "exit.hetzner.location": o.location,
    "exit.hetzner.serverType": o.serverType,
    "exit.hetzner.image": o.image,
    "exit.ssh.target": o.ssh,
    "exit.ssh.port": o.port === undefined ? undefined : Number(o.port),
    "exit.ssh.identityFile": o.identity,
    "exit.ssh.options": o.sshOption,
    "exit.ssh.dir": o.dir,
    "exit.ssh.system": o.system === false ? false : undefined,
  });
}

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
function homeIpFlags(o: Opts): string[] {
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
async function recordEndpoint(config: Config, o: Opts, endpoint: string, server?: Server): Promise<void> {
  const file = o.config ?? DEFAULT_CONFIG_PATH;
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
async function forgetExit(config: Config, o: Opts, server: Server): Promise<void> {
  const ip = server.public_net.ipv4?.ip;
  if (!ip) return;
  const hostOf = (ep: string | undefined) => {
    const hp = ep ? parseHostPort(ep) : undefined;
    return typeof hp === "object" ? hp.host : undefined;
  };
  const values: Record<string, null> = {};
  if (hostOf(config.gateway.peer.endpoint) === ip) values["gateway.peer.endpoint"] = null;
  if (config.exit.ssh.target?.split("@").pop() === ip) values["exit.ssh.target"] = null;
  const file = o.config ?? DEFAULT_CONFIG_PATH;
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

export function registerExit(program: Command): void {
  const exit = program
    .command("exit")
    .description(
      "the exit VPS: render its cloud-init, install over SSH, or manage it on Hetzner Cloud (HCLOUD_TOKEN, HCLOUD_ENDPOINT)",
    );

  const gwKey = (c: Command) =>
    c.option(
      "--gateway-public-key <key>",
      "the gateway's public key (exit.gatewayPublicKey; default: from the secrets store)",
    );

  gwKey(addConfigOption(exit.command("render")))
    .description(
      "print the exit's cloud-init user-data (or --format script: the shell setup script); holds the exit's private key",
    )
    .option("--format <format>", "cloud-init | script", "cloud-init")
    .action(async (o: Opts) => {
      const config = loadExitConfig(o);
      if (o.format !== "cloud-init" && o.format !== "script")
        throw new UserError(`--format ${o.format}: expected cloud-init or script`);
      const host = renderExitHost(config.exit, await exitKeysFromStore(config, o.gatewayPublicKey));
      const e = config.exit;
      if (
        o.format === "cloud-init" &&
        !e.noSsh &&
        !e.sshAuthorizedKeys.length &&
        !e.hetzner.sshKeyNames.length
      )
        process.stderr.write(
          "note: no exit.sshAuthorizedKeys: only keys your provider installs can log into this exit (exit.noSsh: true if none should)\n",
        );
      process.stdout.write(o.format === "script" ? host.setupScript : renderCloudInit(config.exit, host));
    });

  const sshOptions = (c: Command) =>
    c
      .option("--ssh <user@host>", "the machine (exit.ssh.target)")
      .option("--port <n>", "SSH port (exit.ssh.port)")
      .option("--identity <file>", "SSH private key file (exit.ssh.identityFile)")
      .option("--ssh-option <opt>", "extra ssh -o option, repeatable (exit.ssh.options)", collect);

  sshOptions(gwKey(addConfigOption(exit.command("install"))))
    .description(
      "apply the exit configuration to an existing Debian/Ubuntu machine over SSH (script and keys on stdin)",
    )
    .option("--dir <dir>", "directory for the exit's files on the machine (exit.ssh.dir)")
    .option(
      "--no-system",
      "only WireGuard, nftables and sysctls: no boot unit, SSH hardening or upgrades (exit.ssh.system)",
    )
    .action(async (o: Opts) => {
      const config = loadExitConfig(o);
      const target = sshTargetOf(config);
      if (!target) throw new UserError("where to? pass --ssh root@HOST (or set exit.ssh.target)");
      const host = renderExitHost(config.exit, await exitKeysFromStore(config, o.gatewayPublicKey));
      const script = renderInstallScript(config.exit, host, {
        dir: config.exit.ssh.dir,
        system: config.exit.ssh.system,
      });
      process.stdout.write(await runOverSsh(target, script));
    });

  sshOptions(addConfigOption(exit.command("check")))
    .description(
      "the exit's side of the runbook over SSH, read-only: interface and peer, handshake age, forwarding, masquerade, firewall, resolver; exit 1 on failure",
    )
    .option("--json", "machine-readable output: [{name, verdict, evidence, fix}]")
    .option("--resolve <name>", "a name the exit must resolve", "deb.debian.org")
    .action(async (o: Opts & { json?: boolean; resolve: string }) => {
      const config = loadExitConfig(o);
      const target = sshTargetOf(config);
      if (!target) throw new UserError("which exit? pass --ssh root@HOST (or set exit.ssh.target)");
      const results = await checkExit(config.exit, target, {
        ...(await expectedKeys(config)),
        resolveName: o.resolve,
        install: `wg-egress exit install${o.config ? ` --config ${o.config}` : ""}`,
      });
      process.stdout.write(
        o.json
          ? `${JSON.stringify(results, null, 2)}\n`
          : formatResults(results, !!process.stdout.isTTY && !process.env.NO_COLOR),
      );
      if (failed(results)) process.exitCode = 1;
    });

  const provisionCmd = gwKey(addConfigOption(exit.command("provision")))
    .description(
      "create (or find, by label) the Hetzner exit server and its firewall; record the endpoint; print the cost",
    )
    .option("--location <name>", "exit.hetzner.location")
    .option("--server-type <name>", "exit.hetzner.serverType")
    .option("--image <name>", "exit.hetzner.image")
    .option("--home-ip <addr>", "allow SSH from ADDR instead of the detected home IP, repeatable", collect)
    .option("--no-set-endpoint", "do not record the endpoint in the config file");
  provisionCmd.action(async (o: Opts) => {
    const homeIps = homeIpFlags(o);
    const config = loadExitConfig(o);
    const ctx = await hetzner(config);
    const sources = await sshSources(config, homeIps);
    const r = await provision(ctx, sources, async () =>
      renderCloudInit(
        config.exit,
        renderExitHost(config.exit, await exitKeysFromStore(config, o.gatewayPublicKey)),
      ),
    );
    print(
      `${r.created ? "created" : "found"} server ${r.server.name} (id ${r.server.id}) ${r.server.status}, endpoint ${r.endpoint}`,
    );
    print(`firewall ${r.firewall.name}: udp ${config.exit.listenPort} open, ssh from ${sources.join(", ")}`);
    if (o.setEndpoint !== false) await recordEndpoint(config, o, r.endpoint, r.server);
    print(formatCost(config.exit.hetzner.serverType, r.cost));
  });

  addConfigOption(exit.command("status"))
    .description("the Hetzner exit: server state and address, firewall rules, monthly cost")
    .action(async (o: Opts) => {
      if (!(await status(await hetzner(loadExitConfig(o))))) process.exitCode = 1;
    });

  addConfigOption(exit.command("set-endpoint"))
    .description(
      "record the exit's endpoint (HOST:PORT; default: the Hetzner server's IPv4) as gateway.peer.endpoint",
    )
    .argument("[endpoint]", "HOST:PORT")
    .action(async (endpoint: string | undefined, o: Opts) => {
      // The argument is checked as an argument, not blamed on the config file it is going into.
      const hp = endpoint === undefined ? undefined : parseHostPort(endpoint);
      if (typeof hp === "string" || hp?.port === 0 || hp?.host === "0.0.0.0")
        throw new UserError(
          `set-endpoint ${JSON.stringify(endpoint)}: ${typeof hp === "string" ? hp : "expected the exit's address and port"}, e.g. 203.0.113.10:51820`,
        );
      const config = loadExitConfig(o);
      let ep = endpoint;
      if (!ep) {
        const ctx = await hetzner(config);
        const server = await findServer(ctx);
        if (!server)
          throw new UserError(
            "no exit server found: pass the endpoint (HOST:PORT) or run wg-egress exit provision",
            1,
          );
        ep = endpointOf(server, config.exit.listenPort);
      }
      await recordEndpoint(config, o, ep);
    });

  addConfigOption(exit.command("update-home-ip"))
    .description(
      "point the firewall's SSH rule at the current home IP; changes nothing when it already does (for a timer)",
    )
    .option("--home-ip <addr>", "use ADDR instead of detecting it, repeatable", collect)
    .action(async (o: Opts) => {
      const homeIps = homeIpFlags(o);
      const config = loadExitConfig(o);
      const ctx = await hetzner(config);
      const configured = !homeIps.length && config.exit.sshAllowFrom.length > 0;
      const r = await updateHomeIp(ctx, await sshSources(config, homeIps));
      const from = `${r.after.join(", ")}${configured ? " (exit.sshAllowFrom)" : ""}`;
      print(
        r.changed
          ? `updated: SSH allowed from ${from} (was ${r.before.join(", ") || "none"})`
          : `unchanged: SSH allowed from ${from}`,
      );
    });

  addConfigOption(exit.command("deprovision"))
    .description("delete the Hetzner exit server, then its firewall (only resources carrying our labels)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (o: Opts) => {
      if (!o.yes && !process.stdin.isTTY)
        throw new UserError("refusing to delete without confirmation: pass --yes (stdin is not a terminal)");
      const config = loadExitConfig(o);
      const r = await deprovision(await hetzner(config), async (what) => o.yes || confirmOnTty(what));
      if (r.server) await forgetExit(config, o, r.server);
    });
}
