import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { exitIpCheck, observeIps } from "../../src/doctor/ip-check.js";
import { socksConnect } from "../../src/doctor/socks-client.js";
import { createProxyMetrics } from "../../src/metrics/proxy-metrics.js";
import { ProxyServer } from "../../src/socks/server.js";
import { buildSettings } from "../../src/socks/settings.js";
import { log } from "../../src/util/log.js";

/** doctor's SOCKS5 client and IP check against the product's own proxy (with a login) and an echo server, on loopback. */

let proxyPort = 0;
let echoPort = 0;
const echo = createServer((req, res) => res.end(`${req.socket.remoteAddress?.replace(/^::ffff:/, "")}\n`));
const proxyConfig = parseConfig({
  proxy: {
    listen: ["127.0.0.1:0"],
    users: [{ name: "doctor", password: "test-only" }],
    destinations: { allow: ["127.0.0.0/8"] },
  },
});
const proxy = new ProxyServer(buildSettings(proxyConfig.proxy), createProxyMetrics(), log);

before(async () => {
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  echoPort = (echo.address() as AddressInfo).port;
  proxyPort = (await proxy.listen())[0].port;
});
after(async () => {
  echo.close();
  await proxy.shutdown(0);
});

const config = () =>
  parseConfig({
    proxy: { listen: [`127.0.0.1:${proxyPort}`], users: [{ name: "doctor", password: "test-only" }] },
    gateway: { peer: { endpoint: "127.0.0.1:51820" } },
  });

test("through a proxy that does not change the source, doctor reports the leak", async () => {
  const seen = await observeIps(config(), { url: `http://127.0.0.1:${echoPort}/`, timeoutMs: 5000 });
  assert.deepEqual(seen.proxied, { ip: "127.0.0.1" });
  assert.deepEqual(seen.direct, { ip: "127.0.0.1" });
  assert.equal(seen.exit, "127.0.0.1");
  const verdict = exitIpCheck(seen);
  assert.equal(verdict.verdict, "fail");
  assert.match(verdict.evidence, /^LEAK/);
});

test("a wrong password and a refused destination are reported as such", async () => {
  const at = { host: "127.0.0.1", port: proxyPort };
  await assert.rejects(
    socksConnect(at, "127.0.0.1", echoPort, { username: "doctor", password: "nope" }),
    /rejected the username\/password/,
  );
  // Port 9 is not in the allow-list (allowPorts): refused by policy, nothing is sent.
  proxy.settings = buildSettings(
    parseConfig({
      proxy: { ...proxyConfig.proxy, destinations: { allow: ["127.0.0.0/8"], allowPorts: [echoPort] } },
    }).proxy,
  );
  await assert.rejects(
    socksConnect(at, "127.0.0.1", 9, { username: "doctor", password: "test-only" }),
    /SOCKS reply 2 \(not_allowed\)/,
  );
  const ok = await socksConnect(at, "127.0.0.1", echoPort, { username: "doctor", password: "test-only" });
  ok.destroy();
});
