import { readFileSync } from "node:fs";
import type { ExitSpec } from "../config/exits.js";
import type { Config } from "../config/schema.js";
import { shellQuote } from "../exit/ssh-install.js";
import { dataPathOfConfig, selectExits } from "../gateway/apply.js";
import type { DataPath } from "../gateway/model.js";
import { readAgentReport } from "../gateway/runtime.js";
import { observe, summarize } from "../gateway/status.js";
import { errorMessage } from "../util/errors.js";
import { formatHostPort, type HostPort } from "../util/hostport.js";
import { run } from "../util/run.js";
import { type CheckResult, fail, skip } from "./check.js";
import {
  agentCheck,
  CONFIG_ARG,
  exitReachableCheck,
  handshakeCheck,
  interfaceCheck,
  killSwitchCheck,
  markRuleCheck,
  parseSsListeners,
  proxyListenCheck,
  proxyUserCheck,
  routeCheck,
  ruleCheck,
  sameAddr,
} from "./checks.js";
import { dnsCheck, dnsProbeName, dnsRoute, noDnsProbe, probeDns } from "./dns.js";
import { exitIpCheck, observeExitIp, observeIps, skippedIpCheck } from "./ip-check.js";

/** Gathers what the checks look at (side effects only here), then runs every check in the seed's order. */

export interface DoctorOptions {
  /** IP echo service; null = skip the decisive check (saying why: `skipReason`). */
  ipEchoUrl: string | null;
  skipReason?: string;
  /** The proxy address to test; default proxy.listen[0]. */
  proxy?: HostPort;
  timeoutMs?: number;
  /** The config file in use, put into the fixes (undefined: the default path, no --config needed). */
  configFile?: string;
  /** Only this exit's tunnel checks (default: every exit's). */
  exit?: string;
}

const readOrNull = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};

/** The checks each exit gets (skipped without root). */
export const TUNNEL_CHECKS = [
  "tunnel interface",
  "tunnel handshake",
  "exit reachable (UDP)",
  "route table",
  "ip rule fwmark",
  "nft mark rule",
  "kill switch",
  "gateway agent",
];

const isRoot = () => process.getuid?.() === 0;

async function tunnelChecks(x: ExitSpec, p: DataPath): Promise<CheckResult[]> {
  if (!isRoot())
    return TUNNEL_CHECKS.map((n) => skip(n, "needs root (wg show, nft list): run doctor as root"));
  const state = await observe(p);
  const st = summarize(p, state, Math.floor(Date.now() / 1000));
  return [
    interfaceCheck(st),
    handshakeCheck(st),
    exitReachableCheck(st, x.peer.endpoint?.toString()),
    routeCheck(st, p),
    ruleCheck(st, p),
    markRuleCheck(state.nft?.chains.find((c) => c.name === "mark_proxy")?.rules ?? null, p),
    killSwitchCheck(st),
    agentCheck(readAgentReport(p.ifname)),
  ];
}

/** With several exits, each exit's checks are named after it (one exit: the names as always). */
const named = (x: ExitSpec, several: boolean) => (r: CheckResult) =>
  several ? { ...r, name: `exit ${x.name}: ${r.name}` } : r;

/** Every chosen exit's tunnel checks, the first exit first. */
async function exitsTunnelChecks(
  config: Config,
  exits: ExitSpec[],
  several: boolean,
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const x of exits)
    out.push(...(await tunnelChecks(x, dataPathOfConfig(config, x.name))).map(named(x, several)));
  return out;
}

export async function runDoctor(config: Config, opts: DoctorOptions): Promise<CheckResult[]> {
  // An unknown --exit is bad input (exit 2), not a finding.
  const { exits: chosen, all } = selectExits(config, opts.exit);
  const several = all.length > 1;
  let p: DataPath;
  try {
    p = dataPathOfConfig(config);
  } catch (e) {
    return [fail("proxy user", errorMessage(e), "fix the config key the message names")];
  }
  const wanted = config.proxy.listen;
  const noProbe = noDnsProbe(config, isRoot());
  const [tunnel, ss, dns] = await Promise.all([
    exitsTunnelChecks(config, chosen, several),
    run("ss", ["-Hltne"], { allowFail: true }),
    noProbe === null ? probeDns(config, p.uid, dnsProbeName(opts.ipEchoUrl)) : null,
  ]);
  const listeners = parseSsListeners(ss.stdout);
  // Through a proxy that is not there, the decisive check could only fail for that reason: said once, above.
  const tested = opts.proxy ?? wanted[0];
  const listening = listeners.some(
    (l) =>
      l.port === tested.port && (sameAddr(l.host, tested.host) || ["0.0.0.0", "::", "*"].includes(l.host)),
  );
  const ips =
    opts.ipEchoUrl && listening
      ? await observeIps(config, { url: opts.ipEchoUrl, proxy: opts.proxy, timeoutMs: opts.timeoutMs })
      : null;
  // Every other exit's path out, as the proxy uses it: from its tunnel address.
  const exitIps = [];
  for (const x of chosen.filter((x) => !x.primary && opts.ipEchoUrl))
    exitIps.push(
      named(
        x,
        several,
      )(
        exitIpCheck(
          await observeExitIp(x, { url: opts.ipEchoUrl!, timeoutMs: opts.timeoutMs }),
          "exit IP from its tunnel address",
          `from ${x.address.split("/")[0]}`,
        ),
      ),
    );
  const results = [
    ...tunnel,
    proxyListenCheck(listeners, wanted),
    proxyUserCheck(listeners, wanted, p.uid, readOrNull("/etc/passwd")),
    dnsCheck(dnsRoute(config, p, readOrNull("/etc/resolv.conf")), dns, noProbe ?? undefined),
    ips
      ? exitIpCheck(ips)
      : skippedIpCheck(
          opts.ipEchoUrl
            ? `not tried: nothing listens on ${formatHostPort(tested)} (see 'proxy listening')`
            : (opts.skipReason ?? "no IP echo URL: pass --ip-echo-url (or set exit.homeIpUrls)"),
        ),
    ...exitIps,
  ];
  const f = opts.configFile;
  const file = f ? ` --config ${/^[\w@%+=:,./-]+$/.test(f) ? f : shellQuote(f)}` : "";
  return results.map((r) => (r.fix ? { ...r, fix: r.fix.replaceAll(CONFIG_ARG, file) } : r));
}
