import { existsSync, readdirSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { RUNTIME_DIR } from "../gateway/runtime.js";
import { listProcesses, WG_SOCKET_DIR } from "../gateway/wireguard.js";
import { run } from "../util/run.js";
import { PROBE_JS, pidsInNamespace, SERVERS_JS, stopPids } from "./processes.js";
import { EXIT2_IF, EXIT2_NS, GW2_IF } from "./second-exit.js";
import { CONFIG_FILE, EXIT_IF, GW_IF, LAB_NAMESPACES, STATE_DIR } from "./topology.js";

/** With or without the second exit (lab up --exits 2). */
const NAMESPACES = [...LAB_NAMESPACES, EXIT2_NS];
const GW_IFS = [GW_IF, GW2_IF];
const WG_IFS = [GW_IF, EXIT_IF, GW2_IF, EXIT2_IF];

/** Lab teardown: tolerant of any partial state, and able to prove that nothing is left. */

/** The gateway's runtime files (agent state, what `up` recorded) for the lab's interface. */
const labRuntimeFiles = () =>
  existsSync(RUNTIME_DIR)
    ? readdirSync(RUNTIME_DIR)
        .filter((f) => GW_IFS.some((i) => f.startsWith(`${i}.`)))
        .map((f) => `${RUNTIME_DIR}/${f}`)
    : [];

const labSockets = () =>
  existsSync(WG_SOCKET_DIR)
    ? readdirSync(WG_SOCKET_DIR)
        .filter((f) => WG_IFS.some((i) => f === `${i}.sock`))
        .map((f) => `${WG_SOCKET_DIR}/${f}`)
    : [];

/**
 * Removes processes, namespaces (with their links, routes and nft tables), wireguard-go sockets and
 * the state dir. Processes go first: a namespace with a live process in it would outlive `ip netns del`.
 */
export async function labDown(): Promise<void> {
  await stopPids(NAMESPACES.flatMap((ns) => pidsInNamespace(ns)));
  for (const ns of NAMESPACES) if (existsSync(`/run/netns/${ns}`)) await run("ip", ["netns", "del", ns]);
  for (const file of [...labSockets(), ...labRuntimeFiles()]) rmSync(file, { force: true });
  rmSync(STATE_DIR, { recursive: true, force: true });
}

/** What a lab left behind on this host; empty = clean. */
export async function labLeftovers(): Promise<string[]> {
  const left: string[] = [];
  for (const ns of NAMESPACES) if (existsSync(`/run/netns/${ns}`)) left.push(`namespace ${ns}`);
  left.push(...labSockets().map((s) => `socket ${s}`));
  left.push(...labRuntimeFiles().map((f) => `file ${f}`));
  if (existsSync(STATE_DIR)) left.push(`directory ${STATE_DIR}`);
  const links = JSON.parse((await run("ip", ["-j", "link", "show"])).stdout) as { ifname: string }[];
  for (const l of links) if (l.ifname.startsWith("wgelab")) left.push(`interface ${l.ifname}`);
  // A process still holding a deleted namespace would keep it (and its nft tables) alive.
  const ours = (argv: string[]) =>
    argv.some(
      (a) => a === SERVERS_JS || a === PROBE_JS || a === CONFIG_FILE || a.startsWith(`${STATE_DIR}/`),
    ) ||
    (basename(argv[0]) === "wireguard-go" && WG_IFS.includes(argv.at(-1)!));
  for (const p of listProcesses()) if (ours(p.argv)) left.push(`process ${p.pid} (${p.argv.join(" ")})`);
  return left;
}
