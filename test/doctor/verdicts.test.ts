import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { CheckResult } from "../../src/doctor/check.js";
import { exitReachableCheck, handshakeCheck } from "../../src/doctor/checks.js";
import { socksConnect } from "../../src/doctor/socks-client.js";
import type { GatewayStatus } from "../../src/gateway/status.js";
import { cli } from "../support/cli.js";
import { writeConfig } from "../support/config.js";
import { tempDir } from "../support/tmp.js";

/** Doctor's verdicts say what is really wrong: a missing interface, the file in use, no proxy, no SOCKS. */

let http: Server;
let httpPort = 0;
before(async () => {
  http = createServer((_req, res) => res.end("hello\n"));
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  httpPort = (http.address() as AddressInfo).port;
});
after(() => http.close());

const missing: GatewayStatus = {
  interface: "wg-egress",
  present: false,
  implementation: null,
  linkUp: false,
  peer: null,
  rule: { ipv4: true, ipv6: true },
  route: { tunnel4: false, tunnel6: false, unreachable4: true, unreachable6: true },
  nft: { present: true, killSwitchRejects: 0 },
  killSwitchArmed: true,
  killSwitchMissing: [],
  verdict: "down",
};

test("without the interface, handshake and reachability say so instead of 'no peer configured'", () => {
  for (const r of [handshakeCheck(missing), exitReachableCheck(missing, "203.0.113.10:51820")]) {
    assert.equal(r.verdict, "skip", r.name);
    assert.equal(r.evidence, "no interface wg-egress (see 'tunnel interface')");
  }
});

test("a non-SOCKS server on the proxy's port is named as such, not as 'auth method 84'", async () => {
  await assert.rejects(
    socksConnect({ host: "127.0.0.1", port: httpPort }, "192.0.2.1", 80, { timeoutMs: 5000 }),
    (e: Error) =>
      e.message ===
      `bad answer from 127.0.0.1:${httpPort}: not a SOCKS5 server: it answered "HTTP/1.1 400 Bad Request"`,
  );
});

test("doctor: fixes name the config in use; no exit-IP check through a proxy that is not there", async () => {
  const dir = tempDir("wgetest-doctor-");
  // A loopback listen address nobody serves, and another nothing listens on for --proxy.
  const config = writeConfig(dir, {
    proxy: { listen: ["127.0.0.1:1"], allowClients: ["127.0.0.0/8"] },
    gateway: { interface: "wgetest-none9", proxyUid: 400 },
  });
  const doctor = async (...extra: string[]) => {
    const r = await cli([
      "doctor",
      "-c",
      config,
      "--json",
      "--ip-echo-url",
      `http://127.0.0.1:${httpPort}/`,
      ...extra,
    ]);
    return { code: r.code, results: JSON.parse(r.stdout) as CheckResult[] };
  };
  const { code, results } = await doctor();
  assert.equal(code, 1);
  const by = Object.fromEntries(results.map((r) => [r.name, r]));
  assert.equal(by["proxy listening"].verdict, "fail");
  assert.match(
    by["proxy listening"].fix!,
    new RegExp(`wg-egress proxy --config ${join(dir, "config.yaml").replace(/[/.]/g, "\\$&")}\\)`),
  );
  assert.deepEqual(
    [by["exit IP through the proxy"].verdict, by["exit IP through the proxy"].evidence],
    ["skip", "not tried: nothing listens on 127.0.0.1:1 (see 'proxy listening')"],
  );
  for (const r of results) assert.ok(!r.fix?.includes("<file>"), `${r.name}: ${r.fix}`);
  // Something else answers where the proxy should be: said plainly, with the right fix.
  const other = await doctor("--proxy", `127.0.0.1:${httpPort}`);
  const ip = other.results.find((r) => r.name === "exit IP through the proxy")!;
  assert.equal(ip.verdict, "fail");
  assert.match(ip.evidence, /not a SOCKS5 server: it answered "HTTP\/1\.1 400 Bad Request"/);
  assert.match(ip.fix!, /another program answers on the proxy's address/);
});
