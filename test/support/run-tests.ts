/**
 * The test entry point behind `npm test` (all), `npm run test:unit` (no root, seconds) and
 * `npm run test:system` (root: namespaces, nftables, wireguard-go). System tests are the files named
 * *.system.test.js. One `node --test` run, so one summary line; every test has a timeout (the default
 * below unless it sets its own), and the run never waits for handles a failed test left open.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/**
 * node --test applies this to each file as a whole (each runs in its own process) as well as to each test
 * in it that sets no timeout of its own: a file must finish within it.
 */
const DEFAULT_TIMEOUT_MS = 300_000;

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith(".test.js") ? [join(dir, e.name)] : [],
    )
    .sort();
}

const kind = process.argv[2] ?? "all";
if (!["unit", "system", "all"].includes(kind)) {
  process.stderr.write(
    `usage: run-tests.js unit|system|all [FILTER...] (files whose path contains any FILTER)\n`,
  );
  process.exit(2);
}
if (kind !== "unit" && process.getuid?.() !== 0) {
  process.stderr.write(
    "the system tests build network namespaces and need root: run `sudo npm test`, or `npm run test:unit` alone\n",
  );
  process.exit(2);
}
const filters = process.argv.slice(3);
const files = testFiles(ROOT).filter((f) => {
  const system = f.endsWith(".system.test.js");
  const rel = relative(ROOT, f);
  return (
    (kind === "all" || (kind === "system") === system) &&
    (!filters.length || filters.some((x) => rel.includes(x)))
  );
});
// With no file, `node --test` would search the working directory on its own.
if (files.length === 0) {
  process.stderr.write(`no ${kind} test file matches ${filters.join(" or ") || "(any)"}\n`);
  process.exit(2);
}
// Unit files share nothing (ports are ephemeral, files temporary), so they run side by side; system
// files share the host's namespaces, locks and CPU-sensitive timings, so with them every file runs alone.
const concurrency = kind === "unit" ? availableParallelism() : 1;
const r = spawnSync(
  process.execPath,
  [
    "--test",
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${DEFAULT_TIMEOUT_MS}`,
    "--test-force-exit",
    ...files,
  ],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
