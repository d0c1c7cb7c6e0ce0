import type { Command } from "commander";
import { defineCommand, type Invocation } from "./command.js";

type Action = keyof typeof import("./actions/lab.js");
const run = (name: Action) => async (inv: Invocation<{ only?: string; exits?: string }>) =>
  (await import("./actions/lab.js"))[name](inv);

export function registerLab(program: Command): void {
  const lab = program
    .command("lab")
    .description(
      "the whole path in network namespaces on this machine: pod → gateway (proxy, tunnel) → internet → exit",
    );

  defineCommand(lab, {
    name: "up",
    description: "build the lab (rebuilding it if present) and run the real gateway agent and proxy in it",
    usesConfig: false,
    flags: [
      {
        flags: "--exits <n>",
        help: "2: a second exit namespace, exits/pools/routes in the config (alice → one, bob → two, carol → both), one agent per exit",
      },
    ],
    run: run("up"),
  });

  defineCommand(lab, {
    name: "test",
    description: "run the end-to-end scenarios against a running lab; the last one tears it down",
    usesConfig: false,
    flags: [
      { flags: "--only <numbers>", help: "run only these scenarios, e.g. 1,2 (without 11 the lab stays up)" },
    ],
    run: run("test"),
  });

  defineCommand(lab, {
    name: "down",
    description:
      "remove every namespace, interface, process, socket and state file of the lab (tolerates partial state)",
    usesConfig: false,
    run: run("down"),
  });
}
