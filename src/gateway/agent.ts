import { lookup } from "node:dns/promises";
import { errorMessage, OperationError, UsageError } from "../util/errors.js";
import { log } from "../util/log.js";
import { type Watcher, watch } from "../util/run.js";
import { tunnelState } from "../wireguard/dump.js";
import { applyStep } from "./apply.js";
import type { GatewayState, Step, UpSpec } from "./model.js";
import {
  describeStep,
  endpointName,
  planEndpoint,
  planKillSwitch,
  planRoam,
  planTunnel,
  stepCommand,
} from "./plan.js";
import { isTunnelDefault } from "./routes.js";
import {
  type AgentReport,
  type AgentState,
  readAgentReport,
  removeAgentReport,
  removeHealth,
  writeAgentReport,
  writeHealth,
} from "./runtime.js";
import { observe, sourceTowards } from "./status.js";

/**
 * `wg-egress gateway run`: applies the plan, then keeps it true. Netlink events (links, addresses,
 * routes, rules: `ip monitor`) and nftables events (`nft monitor`) trigger a check within COALESCE_MS;
 * a full check runs every FULL_CHECK_MS whatever happens. A check is the same observe → plan → apply as
 * `gateway up`, so a repair can never open a window `up` would not: the kill switch is repaired first and
 * always at once; the tunnel (a dead wireguard-go, a lost route) right after, with backoff when it keeps
 * failing or dying. It also re-resolves a DNS-name endpoint while the handshake is stale, and tells
 * WireGuard at once when the home address changes. Every repair is one JSON log line; state and counters go to /run/wg-egress for
 * `status`, `down` and the exporter. SIGTERM stops watching and leaves everything in place: the kill
 * switch stays armed without us.
 *
 * One agent serves one exit's tunnel (UpSpec): several exits are several agents (`--exit NAME`). At
 * every check it writes the exit's health for the proxy, which picks pool members by it.
 */

export const FULL_CHECK_MS = 10_000;
/** Events come in bursts (a link flap is several messages): one check shortly after the first. */
export const COALESCE_MS = 150;
/** wg-quick's reresolve-dns.sh: a handshake older than this is stale. */
const STALE_HANDSHAKE_S = 135;
const RESOLVE_EVERY_MS = 30_000;
const RESTART_WINDOW_MS = 5 * 60_000;
const MAX_BACKOFF_MS = 30_000;
/** The same non-empty plan this many checks in a row: the repair does not stick, back off. */
const STUCK_AFTER = 3;

/** Wait before the n-th attempt in a row (n ≥ 1): 0, 1, 2, 4, … 30 s. PURE. */
export function backoffMs(n: number): number {
  return n <= 1 ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (n - 2));
}

/** Attempts recorded within a window; how long the next one must wait. */
export class Backoff {
  private times: number[] = [];
  constructor(private readonly windowMs = Number.POSITIVE_INFINITY) {}
  delay(now: number): number {
    this.times = this.times.filter((t) => now - t < this.windowMs);
    const last = this.times.at(-1);
    return last === undefined ? 0 : Math.max(0, last + backoffMs(this.times.length + 1) - now);
  }
  record(now: number): void {
    this.times.push(now);
  }
  reset(): void {
    this.times = [];
  }
  get active(): boolean {
    return this.times.length > 0;
  }
}

export interface AgentOptions {
  /** The exit served (named in its health report). */
  exit: string;
  /** Called at every check: the config and the key file may change while we run (secrets rotate). */
  load: () => { spec: UpSpec; privateKey: string };
}

interface Track {
  name: "kill switch" | "tunnel";
  steps: Step[];
  failures: Backoff;
}

export class GatewayAgent {
  private readonly report: AgentReport = {
    pid: process.pid,
    state: "starting",
    since: Math.floor(Date.now() / 1000),
    repairs: {},
    failures: 0,
    lastRepair: null,
  };
  private current: { spec: UpSpec; privateKey: string } | null = null;
  private checking: Promise<void> | null = null;
  private queued: string | null = null;
  private coalesce: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private periodic: NodeJS.Timeout | undefined;
  private readonly watchers: Watcher[] = [];
  private stopping = false;
  private started = false;
  private hadLink = false;
  private readonly killSwitchFailures = new Backoff();
  private readonly tunnelFailures = new Backoff();
  private readonly restarts = new Backoff(RESTART_WINDOW_MS);
  /** The last plan applied, and how many checks in a row found it again. */
  private lastApplied = "";
  private samePlan = 0;
  private lastResolve = 0;
  /** The source address towards the exit at the last check (the home address, or the WAN's). */
  private homeSource: string | null = null;
  /** An address was removed somewhere since WireGuard was last told (a home address change, e.g. DHCP). */
  private addressGone = false;
  private lastError = "";
  private lastHealth = "";
  /**
   * The step that failed at the last attempt, given one immediate second look: the host may have changed
   * between the check and the step (someone else repairing or breaking it meanwhile), and a plan made from
   * that older view fails without anything being wrong. Failing again counts.
   */
  private retriedStep = "";

  constructor(private readonly opts: AgentOptions) {}

  /** Fails (nothing changed) on a bad config or when another agent serves the interface; then applies. */
  async start(): Promise<void> {
    this.current = this.opts.load();
    const { ifname } = this.current.spec;
    const other = readAgentReport(ifname);
    if (other && other.pid !== process.pid)
      throw new OperationError(`another gateway agent (pid ${other.pid}) already serves ${ifname}`);
    this.publish();
    this.follow("ip", ["monitor", "link", "address", "route", "rule"]);
    this.follow("nft", ["monitor"]);
    this.periodic = setInterval(() => this.trigger("periodic"), FULL_CHECK_MS);
    this.queued = "start";
    await this.drain();
    this.started = true;
    log.info({ interface: ifname, state: this.report.state }, "gateway agent: watching");
  }

  /** Stops watching; a repair under way finishes first. Leaves the kill switch (and the tunnel) as they are. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of [this.coalesce, this.retry]) clearTimeout(t);
    clearInterval(this.periodic);
    for (const w of this.watchers.splice(0)) w.stop();
    await this.checking;
    if (this.current) {
      removeAgentReport(this.current.spec.ifname);
      // Nobody watches this exit any more: its health is unknown, not what it was.
      removeHealth(this.current.spec.ifname);
    }
    log.info(
      { interface: this.current?.spec.ifname },
      "gateway agent stopped: no longer watching; the kill switch stays armed",
    );
  }

  /** Asks for a check soon; a burst of triggers gives one check. */
  trigger(reason: string): void {
    if (this.stopping) return;
    this.queued ??= reason;
    this.coalesce ??= setTimeout(() => {
      this.coalesce = undefined;
      void this.drain();
    }, COALESCE_MS);
  }

  private async drain(): Promise<void> {
    if (this.checking) return; // the running loop picks the queued reason up
    while (this.queued && !this.stopping) {
      const reason = this.queued;
      this.queued = null;
      this.checking = this.check(reason);
      await this.checking;
      this.checking = null;
    }
  }

  /** `cmd` runs as long as we do; any line it prints means something changed. Restarted if it ends. */
  private follow(cmd: string, args: string[]): void {
    const w = watch(
      cmd,
      args,
      (line) => {
        // "Deleted 3: wan0    inet 198.51.100.2/24 …": an address of the host's own, not the tunnel's.
        const gone = cmd === "ip" ? /^Deleted \d+: (\S+)\s+inet6? (\S+)/.exec(line) : null;
        if (gone && gone[1] !== this.current?.spec.ifname && !gone[2].startsWith("fe80:"))
          this.addressGone = true;
        this.trigger(cmd === "nft" ? "nft event" : "netlink event");
      },
      (reason) => {
        if (this.stopping) return;
        log.warn({ reason }, "gateway agent: a watcher ended; restarting it in 1 s");
        this.watchers.splice(this.watchers.indexOf(w), 1);
        // Events may have been missed meanwhile.
        this.trigger("watcher restart");
        setTimeout(() => !this.stopping && this.follow(cmd, args), 1000).unref();
      },
    );
    this.watchers.push(w);
  }

  private setState(state: AgentState): void {
    if (state === this.report.state) return;
    this.report.state = state;
    this.report.since = Math.floor(Date.now() / 1000);
    this.publish();
  }

  private publish(): void {
    if (!this.current) return;
    try {
      writeAgentReport(this.current.spec.ifname, this.report);
    } catch (e) {
      this.logError("cannot write the agent's state file", e);
    }
  }

  /**
   * The exit's health as this check found it: up when the link is up, the tunnel route is there and the
   * handshake is fresh (< 150 s, as `status`). Written before any repair: a broken exit is reported at
   * once, and the check that follows the repair reports it healthy again.
   */
  private publishHealth(spec: UpSpec, state: GatewayState): void {
    const now = Math.floor(Date.now() / 1000);
    const hs = state.wg?.peers.find((p) => p.publicKey === spec.peer.publicKey)?.latestHandshake ?? 0;
    const routed = !!state.link?.up && state.routes4.some(isTunnelDefault(spec.ifname));
    const tunnel = tunnelState(hs, now);
    const health = routed ? tunnel : "down";
    try {
      writeHealth({
        exit: this.opts.exit,
        interface: spec.ifname,
        state: health,
        handshakeAgeSeconds: hs ? now - hs : null,
        checkedAt: now,
      });
    } catch (e) {
      this.logError("cannot write the exit's health file", e);
    }
    if (health !== this.lastHealth)
      log.info({ event: "health", exit: this.opts.exit, state: health }, `gateway agent: exit ${health}`);
    this.lastHealth = health;
  }

  /** An error that repeats is logged once, not every check. */
  private logError(what: string, e: unknown): void {
    const msg = `${what}: ${errorMessage(e)}`;
    if (msg !== this.lastError) log.error({ event: "agent-error" }, msg);
    this.lastError = msg;
  }

  private retryIn(ms: number): void {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.trigger("retry"), Math.max(ms, COALESCE_MS));
  }

  private async check(reason: string): Promise<void> {
    try {
      // What is there first, then the config: a change made by someone else meanwhile (secrets rotate
      // writes the config, then sets the interface) is never undone with an older config.
      const before = this.current!.spec;
      let state = await observe(before);
      this.current = this.reload();
      const { spec } = this.current;
      if (spec.table !== before.table || spec.rulePriority !== before.rulePriority)
        state = await observe(spec);
      if (state.link) this.hadLink = true;
      this.publishHealth(spec, state);
      // The source towards the exit, looked at every check so the one before a change is known even
      // right after a (re)start; a WireGuard (re)configuration sets the endpoint itself.
      const endpoint = state.wg?.peers[0]?.endpoint;
      const source = endpoint ? await sourceTowards(endpoint) : null;
      const roam = planRoam(spec, state.wg, this.homeSource, source, this.addressGone);
      let tunnel = planTunnel(spec, state);
      const reconfigured = tunnel.some((s) => s.kind === "wg-config");
      if (!tunnel.length) tunnel = [...(await this.endpointSteps(spec, state)), ...roam];
      else if (!reconfigured) tunnel.push(...roam);
      const applied = await this.repair(reason, [
        { name: "kill switch", steps: planKillSwitch(spec, state), failures: this.killSwitchFailures },
        { name: "tunnel", steps: tunnel, failures: this.tunnelFailures },
      ]);
      // Only once WireGuard was told (or needed not be): a deferred or failed roam is tried again.
      if (source && (!roam.length || applied.has("tunnel"))) {
        this.homeSource = source;
        this.addressGone = false;
      }
      this.lastError = "";
    } catch (e) {
      this.logError("gateway agent: check failed", e);
      this.killSwitchFailures.record(Date.now());
      this.report.failures++;
      this.setState("failing");
      this.retryIn(this.killSwitchFailures.delay(Date.now()));
    }
  }

  /** The config as it is now; a bad edit keeps the last good one (and says so once). */
  private reload(): { spec: UpSpec; privateKey: string } {
    try {
      const next = this.opts.load();
      if (this.current && next.spec.ifname !== this.current.spec.ifname)
        throw new UsageError("gateway.interface changed: restart the agent to move to another interface");
      return next;
    } catch (e) {
      if (!this.current) throw e;
      this.logError("gateway agent: keeping the last good config", e);
      return this.current;
    }
  }

  /**
   * The kill switch first, then the tunnel; a track waits while it is backing off (repeated failures, a
   * wireguard-go that keeps dying, a repair that does not stick), the other goes ahead.
   */
  private async repair(reason: string, tracks: Track[]): Promise<Set<Track["name"]>> {
    const done = new Set<Track["name"]>();
    const planned = tracks.flatMap((t) => t.steps);
    if (!planned.length) {
      for (const t of tracks) t.failures.reset();
      this.retriedStep = "";
      this.lastApplied = "";
      this.samePlan = 0;
      this.setState("ok");
      return done;
    }
    const key = planned.map(describeStep).join("\n");
    this.samePlan = key === this.lastApplied ? this.samePlan + 1 : 0;
    const stuck = this.samePlan >= STUCK_AFTER;
    this.setState("repairing");
    let waitMs = Number.POSITIVE_INFINITY;
    for (const t of tracks) {
      if (!t.steps.length) continue;
      const now = Date.now();
      const restart = t.steps.some((s) => s.kind === "create-link") && this.hadLink;
      let wait = Math.max(t.failures.delay(now), restart ? this.restarts.delay(now) : 0);
      if (wait === 0 && stuck) {
        log.warn(
          { event: "repair-stuck", track: t.name },
          "gateway agent: the repair does not stick; backing off",
        );
        t.failures.record(now);
        wait = t.failures.delay(now);
      }
      if (wait > 0) {
        waitMs = Math.min(waitMs, wait);
        continue;
      }
      if (restart) this.restarts.record(now);
      if (await this.applyTrack(reason, t)) done.add(t.name);
      else waitMs = Math.min(waitMs, t.failures.delay(Date.now()));
    }
    if (done.size) this.lastApplied = key;
    this.setState(tracks.some((t) => t.failures.active) ? "failing" : "repairing");
    if (waitMs < Number.POSITIVE_INFINITY) this.retryIn(waitMs);
    // Some repairs make no netlink event (WireGuard config, sysctl): look again to confirm.
    if (done.size) this.trigger("verify");
    return done;
  }

  /** Applies a track's steps in order, stopping at the first failure; true when all applied. */
  private async applyTrack(reason: string, t: Track): Promise<boolean> {
    const initial = !this.started;
    for (const step of t.steps) {
      const t0 = Date.now();
      const fields = { what: step.part, step: step.why, cmd: stepCommand(step), trigger: reason };
      const described = describeStep(step);
      try {
        await applyStep(step, this.current?.privateKey ?? null);
        if (described === this.retriedStep) this.retriedStep = "";
      } catch (e) {
        if (described !== this.retriedStep) {
          this.retriedStep = described;
          log.warn(
            { event: "repair-retry", ...fields, error: errorMessage(e) },
            `gateway agent: ${t.name} repair failed; looking again before retrying`,
          );
          return false;
        }
        t.failures.record(Date.now()); // retriedStep stays: until it works, each failure counts
        this.report.failures++;
        log.error(
          {
            event: "repair-failed",
            ...fields,
            error: errorMessage(e),
            retryInSeconds: t.failures.delay(Date.now()) / 1000,
          },
          `gateway agent: ${t.name} repair failed`,
        );
        this.publish();
        return false;
      }
      const ms = Date.now() - t0;
      if (initial) log.info({ event: "apply", ...fields, ms }, "gateway agent: applied");
      else {
        this.report.repairs[step.part] = (this.report.repairs[step.part] ?? 0) + 1;
        this.report.lastRepair = { at: Math.floor(Date.now() / 1000), what: step.part, why: step.why };
        log.info({ event: "repair", ...fields, ms }, "gateway agent: repaired");
      }
    }
    t.failures.reset();
    this.publish();
    return true;
  }

  /** A hostname endpoint is looked up again (at most every 30 s) while the handshake is stale. */
  private async endpointSteps(spec: UpSpec, state: GatewayState): Promise<Step[]> {
    const name = endpointName(spec);
    const peer = state.wg?.peers[0];
    const now = Date.now();
    if (!name || !peer || !state.link?.up) return [];
    const age = peer.latestHandshake ? now / 1000 - peer.latestHandshake : Number.POSITIVE_INFINITY;
    if (age < STALE_HANDSHAKE_S || now - this.lastResolve < RESOLVE_EVERY_MS) return [];
    this.lastResolve = now;
    try {
      const found = await lookup(name.host, { all: true, verbatim: true });
      return planEndpoint(
        spec,
        state.wg,
        found.map((a) => a.address),
      );
    } catch (e) {
      log.warn(
        { host: name.host, error: errorMessage(e) },
        "gateway agent: cannot resolve the exit's endpoint",
      );
      return [];
    }
  }
}
