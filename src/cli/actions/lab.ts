import { existsSync } from "node:fs";
import { labDown, labLeftovers } from "../../lab/down.js";
import { runScenarios } from "../../lab/scenarios.js";
import { LAB_NAMESPACES, USAGE } from "../../lab/topology.js";
import { labUp } from "../../lab/up.js";
import { OperationError, UsageError } from "../../util/errors.js";
import type { Invocation } from "../command.js";

function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new OperationError("the lab creates network namespaces: run it as root");
}

export async function up({ opts: o }: Invocation<{ exits?: string }>): Promise<void> {
  if (o.exits !== undefined && o.exits !== "1" && o.exits !== "2")
    throw new UsageError(`lab up --exits ${o.exits}: the lab has 1 or 2 exits`);
  requireRoot();
  await labUp({ exits: o.exits === "2" ? 2 : 1 });
  process.stdout.write(USAGE);
}

export async function test({ opts: o }: Invocation<{ only?: string }>): Promise<void> {
  requireRoot();
  if (!LAB_NAMESPACES.every((ns) => existsSync(`/run/netns/${ns}`)))
    throw new OperationError("the lab is not up: run wg-egress lab up first");
  const only = o.only?.split(",").map((n) => n.trim());
  const t0 = Date.now();
  const ok = await runScenarios(
    (line) => process.stdout.write(`${line}\n`),
    only && ((name) => only.includes(name.split(" ")[0])),
  );
  process.stdout.write(`${ok ? "all passed" : "FAILED"} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (!ok) process.exitCode = 1;
}

export async function down(): Promise<void> {
  requireRoot();
  await labDown();
  const left = await labLeftovers();
  if (left.length) throw new OperationError(`lab down left behind: ${left.join(", ")}`);
  process.stdout.write("lab is down; nothing left behind\n");
}
