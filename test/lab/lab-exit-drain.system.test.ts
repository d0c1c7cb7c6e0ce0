/**
 * Make-before-break replacement of an exit in the two-exit lab (issue 13): an idle IRC-like connection
 * through exit one keeps working (the server pings, the client answers) through `exit drain one --to
 * two`; new connections see exit two's address at once; no packet leaves through the home line; once
 * the idle connection closes, `exit drain --wait` returns and exit one reports 0 connections. Holds
 * /tmp/wgelab.lock for the whole file.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, test } from "node:test";
import { MAIN_JS, pidsInNamespace } from "../../src/lab/processes.js";
import { POOL_USERS, PROXY_METRICS } from "../../src/lab/second-exit.js";
import { ADDR, LINE_PORT, NS, PROXY_PORT } from "../../src/lab/topology.js";
import { cli, echoAs, inNs } from "../../src/lab/up.js";
import { waitFor } from "../support/poll.js";
import { leaked, ONE, TWO, useTwoExitLab } from "./two-exit-lab.js";

/**
 * alice (exit one) through the proxy (PySocks), IRC-like: each line on its stdin makes it ask the line
 * server for a PING ("WAIT 1") and print what came back; idle in between; EOF closes the connection.
 */
const IRC_CLIENT = `
import socks, sys
s = socks.socksocket()
s.set_proxy(socks.SOCKS5, "${ADDR.gwLan}", ${PROXY_PORT}, username="alice", password="alice")
s.settimeout(30)
s.connect(("${ADDR.server}", ${LINE_PORT}))
for line in sys.stdin:
    s.sendall(b"WAIT 1\\n")
    print(s.recv(64).decode().strip(), flush=True)
s.close()
print("closed", flush=True)
`;

class IrcClient {
  private out = "";
  readonly child: ChildProcess;
  constructor() {
    this.child = spawn("ip", ["netns", "exec", NS.pod, "/usr/bin/python3", "-c", IRC_CLIENT], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (d: Buffer) => {
      this.out += d.toString();
    });
    this.child.stderr!.on("data", (d: Buffer) => {
      this.out += d.toString();
    });
  }
  /** One ping/pong: the client speaks, the server answers (both directions of the relayed connection). */
  async ping(n: number): Promise<void> {
    this.child.stdin!.write("go\n");
    await waitFor(`PING number ${n}`, 15_000, () => this.out.split("PING wgelab").length - 1 >= n);
    assert.doesNotMatch(this.out, /Error|Traceback/, this.out);
  }
  async close(): Promise<void> {
    this.child.stdin!.end();
    await waitFor("the client closing", 15_000, () => this.out.includes("closed"));
  }
  kill(): void {
    if (this.child.exitCode === null) this.child.kill();
  }
}

/** The proxy's drain state and open connections of an exit, from its metrics (inside the gateway namespace). */
async function exitMetrics(exit: string): Promise<{ draining: number; open: number }> {
  const r = await inNs(NS.gw, ["curl", "-sS", "--max-time", "3", `http://${PROXY_METRICS}/metrics`]);
  const value = (re: RegExp) => Number(re.exec(r.stdout)?.[1] ?? Number.NaN);
  return {
    draining: value(new RegExp(`^wg_egress_proxy_exit_draining\\{exit="${exit}",to="[a-z]*"\\} (\\d+)`, "m")),
    open: value(new RegExp(`^wg_egress_proxy_exit_open_connections\\{exit="${exit}"\\} (\\d+)`, "m")),
  };
}

let irc: IrcClient | undefined;

useTwoExitLab();

after(() => irc?.kill());

/** `wg-egress exit …` in the gateway namespace, telling the lab's one proxy by its PID. */
function drainCmd(args: string[]) {
  const pids = pidsInNamespace(NS.gw, (argv) => argv.includes(MAIN_JS) && argv.includes("proxy"));
  assert.equal(pids.length, 1, "the two-exit lab runs one proxy");
  return cli(NS.gw, ["exit", ...args, "--proxy-pid", String(pids[0])], {
    allowFail: true,
    timeoutMs: 120_000,
  });
}

test("exit drain one --to two: the idle IRC connection on exit one lives on, new connections leave by exit two, 0 home packets; --wait returns once it closes", async () => {
  const leak0 = await leaked();
  assert.equal(await echoAs("alice"), ONE);
  irc = new IrcClient();
  await irc.ping(1);
  assert.deepEqual(await exitMetrics("one"), { draining: 0, open: 1 }, "alice's connection, on exit one");

  const drained = await drainCmd(["drain", "one", "--to", "two"]);
  assert.equal(drained.code, 0, drained.stderr);
  assert.match(drained.stdout, /exit one drains: new connections go to two/);
  assert.match(drained.stdout, /exit one: 1 connection\(s\) open/);

  // New connections: exit two at once, for alice (exit one's own route), the default and the pool.
  assert.equal(await echoAs("alice"), TWO);
  assert.equal(await echoAs("dave"), TWO, "the default route named exit one");
  for (const u of POOL_USERS) assert.equal(await echoAs(u), TWO, u);
  assert.equal(await echoAs("bob"), TWO);
  // Established: still through exit one, both ways.
  await irc.ping(2);
  assert.deepEqual(await exitMetrics("one"), { draining: 1, open: 1 });
  const ss = await inNs(NS.gw, ["ss", "-tnH", "state", "established", "dst", `${ADDR.server}:${LINE_PORT}`]);
  assert.match(
    ss.stdout,
    new RegExp(`${ADDR.gwTunnel.replaceAll(".", "\\.")}:`),
    "bound to exit one's tunnel address",
  );

  // --wait returns when the last connection on exit one has closed.
  const waiting = drainCmd(["drain", "one", "--to", "two", "--wait"]);
  await irc.ping(3);
  await irc.close();
  const waited = await waiting;
  assert.equal(waited.code, 0, waited.stderr);
  assert.match(waited.stdout, /exit one has no connections left/);
  assert.deepEqual(await exitMetrics("one"), { draining: 1, open: 0 });
  assert.equal(await leaked(), leak0, "no packet left through the home line");

  // Undone: exit one takes new connections again.
  const undone = await drainCmd(["undrain", "one"]);
  assert.equal(undone.code, 0, undone.stderr);
  assert.equal(await echoAs("alice"), ONE);
  assert.equal(await leaked(), leak0, "no packet left through the home line");
});
