import { readFileSync } from "node:fs";
import { get } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import type { Config } from "../../config/schema.js";
import { setConfigValues } from "../../exit/config-edit.js";
import {
  type DrainReadout,
  parseDeadline,
  planDrain,
  readDrain,
  replacementRefusal,
} from "../../exit/drain.js";
import { ExitHealth } from "../../policy/exit-health.js";
import { writeFileAtomic } from "../../secrets/atomic.js";
import { errorMessage, OperationError, UsageError } from "../../util/errors.js";
import { formatHostPort, type HostPort } from "../../util/hostport.js";
import { run } from "../../util/run.js";
import type { Invocation } from "../command.js";

export interface DrainOpts {
  to?: string;
  deadline?: string;
  wait?: boolean;
  proxyPid?: number;
  /** --no-reload: false. */
  reload?: boolean;
}

type Run = Invocation<DrainOpts>;

const print = (line: string) => process.stdout.write(`${line}\n`);

const PROXY_UNIT = "wg-egress-proxy.service";
/** How long the proxy may take to show a reload in its metrics. */
const CONFIRM_MS = 10_000;
const POLL_MS = 1000;
/** Scrapes that may fail in a row while waiting before the wait gives up. */
const MAX_SCRAPE_FAILURES = 10;
/** After the deadline the proxy closes what is left within its 1 s sweep: this long to see 0. */
const AFTER_DEADLINE_MS = 10_000;

/** The proxy's /metrics text, from where it listens (a wildcard address: over loopback). */
function scrape(at: HostPort): Promise<string> {
  const host = at.host === "0.0.0.0" ? "127.0.0.1" : at.host === "::" ? "::1" : at.host;
  return new Promise((resolve, reject) => {
    const req = get({ host, port: at.port, path: "/metrics", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        body += d;
      });
      res.on("end", () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

async function readout(cfg: Config, exit: string): Promise<DrainReadout> {
  const at = cfg.proxy.metrics!;
  let text: string;
  try {
    text = await scrape(at);
  } catch (e) {
    throw new OperationError(`cannot read the proxy's metrics at ${formatHostPort(at)}: ${errorMessage(e)}`);
  }
  return readDrain(text, exit);
}

/** SIGHUP to the proxy: the PID given, else the systemd unit's main process. */
async function reloadProxy(pid: number | undefined): Promise<void> {
  if (pid === undefined) {
    await run("systemctl", ["kill", "--signal=SIGHUP", "--kill-whom=main", PROXY_UNIT]);
    return;
  }
  try {
    process.kill(pid, "SIGHUP");
  } catch (e) {
    throw new OperationError(`cannot signal the proxy (pid ${pid}): ${(e as NodeJS.ErrnoException).code}`);
  }
}

/**
 * Writes the change, has the proxy apply it and (with proxy.metrics) sees it applied; on any failure
 * the previous file is put back (and the proxy told again), so file and proxy never disagree.
 */
async function apply(
  inv: Run,
  cfg: Config,
  exit: string,
  value: Record<string, string> | null,
): Promise<void> {
  const file = inv.configFile;
  const before = readFileSync(file, "utf8");
  const changed = setConfigValues(file, {
    [`exits.${cfg.exits!.findIndex((x) => x.name === exit)}.drain`]: value,
  });
  if (inv.opts.reload === false) {
    print(`${changed.length ? "config updated" : "config unchanged"}; the proxy was not told (--no-reload)`);
    return;
  }
  try {
    await reloadProxy(inv.opts.proxyPid);
    if (!cfg.proxy.metrics) {
      print(
        "proxy reloaded; proxy.metrics is not set, so the change cannot be confirmed nor connections counted",
      );
      return;
    }
    const until = Date.now() + CONFIRM_MS;
    for (;;) {
      const r = await readout(cfg, exit).catch(() => undefined);
      if (r && isDeepStrictEqual(r.drain, value)) return;
      if (Date.now() > until)
        throw new OperationError(
          `the proxy did not apply the change within ${CONFIRM_MS / 1000} s (its log says why: a reload it refuses keeps its previous config)`,
        );
      await sleep(200);
    }
  } catch (e) {
    if (!changed.length) throw e;
    writeFileAtomic(file, before);
    await reloadProxy(inv.opts.proxyPid).catch(() => undefined);
    throw new OperationError(`${errorMessage(e)}; ${file} is back as it was`);
  }
}

/** Until the exit has no connection left, or the deadline (plus the proxy's sweep) has passed. */
async function waitDrained(cfg: Config, exit: string, deadline: number | undefined): Promise<number> {
  let failures = 0;
  let last = -1;
  for (;;) {
    let r: DrainReadout;
    try {
      r = await readout(cfg, exit);
      failures = 0;
    } catch (e) {
      if (++failures >= MAX_SCRAPE_FAILURES) throw e;
      await sleep(POLL_MS);
      continue;
    }
    if (!r.drain) throw new OperationError(`exit ${exit} is no longer draining (undrained meanwhile?)`);
    if (r.open !== last) print(`exit ${exit}: ${r.open} connection(s) open`);
    last = r.open;
    if (r.open === 0 || (deadline !== undefined && Date.now() > deadline + AFTER_DEADLINE_MS)) return r.open;
    await sleep(POLL_MS);
  }
}

export async function drainExit(inv: Run): Promise<void> {
  const [name] = inv.args;
  const { opts } = inv;
  const cfg = await inv.config();
  const deadline = opts.deadline === undefined ? undefined : parseDeadline(opts.deadline, Date.now());
  const plan = planDrain(cfg, name, opts.to, deadline);
  if (opts.wait && (!cfg.proxy.metrics || opts.reload === false))
    throw new UsageError(
      "--wait counts the exit's connections in the proxy's metrics: set proxy.metrics (e.g. :9587), and let the proxy reload",
    );
  // Make before break: the replacement must carry traffic now, or nothing changes.
  if (plan.to) {
    const health = new ExitHealth(new Map([[plan.to.name, plan.to.interface]])).get(plan.to.name);
    const refusal = replacementRefusal(plan.to, health);
    if (refusal) throw new OperationError(refusal);
  }
  await apply(inv, cfg, name, plan.drain);
  const where = plan.to ? `new connections go to ${plan.to.name}` : "no new connections";
  const until = plan.drain.deadline ? `; the proxy closes what is left at ${plan.drain.deadline}` : "";
  print(`exit ${name} drains: ${where}${until}`);
  if (!cfg.proxy.metrics || opts.reload === false) return;
  if (!opts.wait) {
    print(`exit ${name}: ${(await readout(cfg, name)).open} connection(s) open`);
    return;
  }
  const left = await waitDrained(cfg, name, deadline);
  if (left > 0) throw new OperationError(`exit ${name} still has ${left} connection(s) after the deadline`);
  print(`exit ${name} has no connections left: it can be removed (README: Replacing an exit)`);
}

export async function undrainExit(inv: Run): Promise<void> {
  const [name] = inv.args;
  const cfg = await inv.config();
  const exit = cfg.exits?.find((x) => x.name === name);
  if (!exit)
    throw new UsageError(
      `exit undrain ${name}: no such exit in exits: (${cfg.exits?.map((x) => x.name).join(", ") ?? "none listed"})`,
    );
  await apply(inv, cfg, name, null);
  print(`exit ${name} takes new connections again`);
}
