import { existsSync } from "node:fs";
import type { Command } from "commander";
import { labDown, labLeftovers } from "../lab/down.js";
import { runScenarios } from "../lab/scenarios.js";
import { LAB_NAMESPACES, USAGE } from "../lab/topology.js";
import { labUp } from "../lab/up.js";
import { UserError } from "../util/errors.js";

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new UserError("the lab creates network namespaces: run it as root", 1);
}

export function registerLab(program: Command): void {
  const lab = program
    .command("lab")
    .description(
      "the whole path in network namespaces on this machine: pod → gateway (proxy, tunnel) → internet → exit",
    );

  lab
    .command("up")
    .description("build the lab (rebuilding it if present) and run the real gateway and proxy in it")
    .action(async () => {
      requireRoot();
      await labUp();
      process.stdout.write(USAGE);
    });

  lab
    .command("test")
    .description("run the end-to-end scenarios against a running lab; the last one tears it down")
    .option("--only <numbers>", "run only these scenarios, e.g. 1,2 (without 11 the lab stays up)")
    .action(async (o: { only?: string }) => {
      requireRoot();
      if (!LAB_NAMESPACES.every((ns) => existsSync(`/run/netns/${ns}`)))
        throw new UserError("the lab is not up: run wg-egress lab up first", 1);
      const only = o.only?.split(",").map((n) => n.trim());
      const t0 = Date.now();
      const ok = await runScenarios(
        (line) => process.stdout.write(`${line}\n`),
        only && ((name) => only.includes(name.split(" ")[0])),
      );
      process.stdout.write(`${ok ? "all passed" : "FAILED"} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      if (!ok) process.exitCode = 1;
    });

  lab
    .command("down")
    .description(
      "remove every namespace, interface, process, socket and state file of the lab (tolerates partial state)",
    )
    .action(async () => {
      requireRoot();
      await labDown();
      const left = await labLeftovers();
      if (left.length) throw new UserError(`lab down left behind: ${left.join(", ")}`, 1);
      process.stdout.write("lab is down; nothing left behind\n");
    });
}
