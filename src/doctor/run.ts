import { readFileSync } from "node:fs";
import type { Config } from "../config/schema.js";
import { shellQuote } from "../exit/ssh-install.js";
import { dataPathOf, NFT_TABLE } from "../gateway/plan.js";
import { resolveProxyUid } from "../gateway/proxy-user.js";
import { observe, summarize } from "../gateway/status.js";
import { errorMessage } from "../util/errors.js";
import { formatHostPort, type HostPort, parseHostPort } from "../util/hostport.js";
import { run } from "../util/run.js";
import { type CheckResult, fail, skip } from "./check.js";
import {
  CONFIG_ARG,
  dnsCheck,
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
import { exitIpCheck, observeIps, skippedIpCheck } from "./ip-check.js";

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
}

const readOrNull = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
};

const TUNNEL_CHECKS = [
  "tunnel interface",
  "tunnel handshake",
  "exit reachable (UDP)",
  "route table",
  "ip rule fwmark",
  "nft mark rule",
  "kill switch",
];

async function tunnelChecks(config: Config, uid: number): Promise<CheckResult[]> {
  if (process.getuid?.() !== 0)
    return TUNNEL_CHECKS.map((n) => skip(n, "needs root (wg show, nft list): run doctor as root"));
  const p = dataPathOf(config.gateway, uid);
  const [state, chain] = await Promise.all([
    observe(p),
    run("nft", ["list", "chain", "inet", NFT_TABLE, "mark_proxy"], { allowFail: true }),
  ]);
  const st = summarize(p, state, Math.floor(Date.now() / 1000));
  return [
    interfaceCheck(st),
    handshakeCheck(st),
    exitReachableCheck(st, config.gateway.peer.endpoint),
    routeCheck(st, p),
    ruleCheck(st, p),
    markRuleCheck(chain.code === 0 ? chain.stdout : null, p),
    killSwitchCheck(st, state.nft?.chains ?? []),
  ];
}

export async function runDoctor(config: Config, opts: DoctorOptions): Promise<CheckResult[]> {
  let uid: number;
  try {
    uid = resolveProxyUid(config.gateway);
  } catch (e) {
    return [fail("proxy user", errorMessage(e), "create the user or set gateway.proxyUid")];
  }
  const wanted = config.proxy.listen.map((l) => parseHostPort(l) as HostPort);
  const [tunnel, ss] = await Promise.all([
    tunnelChecks(config, uid),
    run("ss", ["-Hltne"], { allowFail: true }),
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
  const results = [
    ...tunnel,
    proxyListenCheck(listeners, wanted),
    proxyUserCheck(listeners, wanted, uid, readOrNull("/etc/passwd")),
    dnsCheck(readOrNull("/etc/resolv.conf"), config.proxy.dns.servers),
    ips
      ? exitIpCheck(ips)
      : skippedIpCheck(
          opts.ipEchoUrl
            ? `not tried: nothing listens on ${formatHostPort(tested)} (see 'proxy listening')`
            : (opts.skipReason ?? "no IP echo URL: pass --ip-echo-url (or set exit.homeIpUrls)"),
        ),
  ];
  const f = opts.configFile;
  const file = f ? ` --config ${/^[\w@%+=:,./-]+$/.test(f) ? f : shellQuote(f)}` : "";
  return results.map((r) => (r.fix ? { ...r, fix: r.fix.replaceAll(CONFIG_ARG, file) } : r));
}
