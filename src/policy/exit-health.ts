import { readFileSync } from "node:fs";
import { type HealthReport, healthFile, RUNTIME_DIR } from "../gateway/runtime.js";
import type { Health } from "./egress.js";

/**
 * The exits' health as the gateway agents last reported it (/run/wg-egress/<if>.health.json), for the
 * unprivileged proxy. Read at most once a second per exit. A report older than STALE_REPORT_S (no agent
 * writes it: stopped or dead) or none at all is "unknown": a pool prefers a member known healthy, and
 * uses one of unknown health only when none is.
 */

export const STALE_REPORT_S = 30;
const REREAD_MS = 1000;

export function healthOf(report: HealthReport | null, nowSeconds: number): Health {
  if (!report || typeof report.checkedAt !== "number" || nowSeconds - report.checkedAt > STALE_REPORT_S)
    return "unknown";
  return report.state === "up" ? "healthy" : "unhealthy";
}

export class ExitHealth {
  private readonly cache = new Map<string, { at: number; health: Health }>();

  /** `interfaces`: exit name → its WireGuard interface (the file's name). */
  constructor(
    private readonly interfaces: ReadonlyMap<string, string>,
    private readonly dir = RUNTIME_DIR,
  ) {}

  get(exit: string): Health {
    const now = Date.now();
    const hit = this.cache.get(exit);
    if (hit && now - hit.at < REREAD_MS) return hit.health;
    const ifname = this.interfaces.get(exit);
    let report: HealthReport | null = null;
    try {
      if (ifname) report = JSON.parse(readFileSync(healthFile(ifname, this.dir), "utf8")) as HealthReport;
    } catch {
      // absent (no agent yet) or half-written by someone else: unknown
    }
    const health = healthOf(report, now / 1000);
    this.cache.set(exit, { at: now, health });
    return health;
  }
}
