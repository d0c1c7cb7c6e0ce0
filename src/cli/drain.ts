import type { Command } from "commander";
import type { DrainOpts } from "./actions/drain.js";
import { defineCommand, type Invocation } from "./command.js";
import { type Flag, number } from "./flags.js";

/** `exit drain` / `exit undrain`: make-before-break replacement of one exit among several (exits[].drain). */

const RELOAD: Flag[] = [
  {
    flags: "--proxy-pid <pid>",
    help: "send SIGHUP to this process instead of the wg-egress-proxy systemd unit",
    parse: number("--proxy-pid", { integer: true, min: 1 }),
  },
  { flags: "--no-reload", help: "only edit the config; the proxy applies it at its next reload or start" },
];

const HELP = `
The config is the truth: exits[].drain survives restarts. While an exit drains, pools skip it, routes
naming it go to its replacement (--to; none: they are refused at once, never the home line), and its
established connections stay until they close or the deadline, when the proxy closes them (clients
reconnect and land on the replacement). The replacement must be healthy (its agent's report) or
nothing changes. The proxy's metrics (proxy.metrics) confirm the reload and count the exit's
connections; on a failed reload the config file is put back.`;

const run = (name: "drainExit" | "undrainExit") => async (inv: Invocation<DrainOpts>) =>
  (await import("./actions/drain.js"))[name](inv);

export function registerDrain(exit: Command): void {
  defineCommand(exit, {
    name: "drain <exit>",
    description:
      "stop sending new connections to an exit (to --to EXIT instead), keep its open ones until they close or --deadline",
    flags: [
      { flags: "--to <exit>", help: "the exit that takes its new connections (must be healthy)" },
      {
        flags: "--deadline <when>",
        help: "then close what is left: a duration (48h, 90m, 2d) or a time (2026-12-02T18:00:00Z); default: never",
      },
      { flags: "--wait", help: "return when the exit has no connections left (or the deadline has passed)" },
      ...RELOAD,
    ],
    help: HELP,
    run: run("drainExit"),
  });

  defineCommand(exit, {
    name: "undrain <exit>",
    description: "undo exit drain: the exit takes new connections again",
    flags: RELOAD,
    run: run("undrainExit"),
  });
}
