import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfig, parseConfig } from "../../src/config/load.js";
import { UserError } from "../../src/util/errors.js";
import { run } from "../../src/util/run.js";
import { cli, MAIN } from "../support/cli.js";
import { tempDir } from "../support/tmp.js";

function errorOf(fn: () => unknown): UserError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected UserError, got ${e}`);
    return e;
  }
  assert.fail("expected an error");
}

test("an empty config gives the embedded defaults", () => {
  const c = parseConfig({});
  assert.deepEqual(c.proxy.listen.map(String), ["127.0.0.1:1080"]);
  assert.equal(c.gateway.interface, "wg-egress");
  assert.equal(c.gateway.fwmark, 0xca6c);
  assert.equal(c.gateway.table, 51820);
  assert.equal(c.gateway.proxyUid, 400);
  assert.equal(c.proxy.keepalive.enabled, true);
  assert.equal(c.proxy.idleTimeoutSeconds, 0);
});

test("on a gateway the proxy resolves at the exit by default; an explicit list (even []) wins", () => {
  const peer = { endpoint: "203.0.113.10:51820" };
  assert.deepEqual(parseConfig({}).proxy.dns.servers, [], "no gateway here: the system resolver");
  assert.deepEqual(parseConfig({ gateway: { peer } }).proxy.dns.servers, ["10.100.0.1"]);
  assert.deepEqual(
    parseConfig({
      gateway: { peer },
      exit: { address: "10.77.0.1/24" },
      proxy: { dns: { timeoutSeconds: 2 } },
    }).proxy.dns,
    { servers: ["10.77.0.1"], family: "ipv4first", timeoutSeconds: 2 },
  );
  assert.deepEqual(parseConfig({ gateway: { peer }, proxy: { dns: { servers: [] } } }).proxy.dns.servers, []);
  assert.deepEqual(
    parseConfig({ gateway: { peer }, proxy: { dns: { servers: ["10.1.0.254"] } } }).proxy.dns.servers,
    ["10.1.0.254"],
  );
  // A bad exit.address is reported as itself.
  assert.match(
    errorOf(() => parseConfig({ gateway: { peer }, exit: { address: "nope" } })).message,
    /exit\.address/,
  );
});

test("hex fwmark strings are accepted", () => {
  assert.equal(parseConfig({ gateway: { fwmark: "0xca6c" } }).gateway.fwmark, 51820);
});

test("a bad value names the key, the value and what is expected, on one line", () => {
  const e = errorOf(() => parseConfig({ proxy: { listen: ["10.1.0.1"] } }, "cfg.yaml"));
  assert.equal(e.exitCode, 2);
  assert.doesNotMatch(e.message, /\n/);
  assert.match(e.message, /cfg\.yaml/);
  assert.match(e.message, /proxy\.listen\[0\]/);
  assert.match(e.message, /"10\.1\.0\.1"/);
  assert.match(e.message, /HOST:PORT/);
});

test("unknown keys are rejected with a hint", () => {
  const e = errorOf(() => parseConfig({ proxy: { lisen: ["127.0.0.1:1080"] } }));
  assert.match(e.message, /proxy.*lisen.*spelling/);
});

test("bad CIDRs and keys are rejected", () => {
  assert.match(errorOf(() => parseConfig({ proxy: { allowClients: ["10.0.0.0/33"] } })).message, /CIDR/);
  assert.match(
    errorOf(() => parseConfig({ gateway: { peer: { publicKey: "short" } } })).message,
    /gateway\.peer\.publicKey.*WireGuard key/,
  );
});

test("YAML files: flags override keys; a missing explicit file and broken YAML are one-line errors", () => {
  const dir = tempDir("wgetest-config-");
  const file = join(dir, "config.yaml");
  writeFileSync(file, "proxy:\n  listen: ['10.1.0.1:1080']\n  handshakeTimeoutSeconds: 3\n");
  const c = loadConfig(file, { "proxy.listen": ["127.0.0.1:1999"] });
  assert.deepEqual(c.proxy.listen.map(String), ["127.0.0.1:1999"]);
  assert.equal(c.proxy.handshakeTimeoutSeconds, 3);
  assert.match(
    errorOf(() => loadConfig(join(dir, "nope.yaml"))).message,
    /cannot read config .*nope\.yaml: no such file; pass an existing file with --config$/,
  );
  writeFileSync(file, "proxy: [unclosed\n");
  // One line, ending with where: no dangling ":" left from the snippet yaml would print below it.
  assert.match(
    errorOf(() => loadConfig(file)).message,
    /^invalid YAML in \S+config\.yaml: Flow sequence .* at line 2, column 1$/,
  );
});

test("a config the user may not read gets the fix for permissions, not 'pass an existing file'", async () => {
  const dir = tempDir("wgetest-config-");
  const file = join(dir, "config.yaml");
  writeFileSync(file, "proxy: {}\n", { mode: 0o600 });
  // As root, read it as the proxy's uid 400 (root reads everything); otherwise a file we may not read.
  const root = process.getuid?.() === 0;
  if (!root) chmodSync(file, 0);
  const r = root
    ? await run(
        "setpriv",
        ["--reuid=400", "--regid=400", "--clear-groups", process.execPath, MAIN, "proxy", "--config", file],
        { allowFail: true },
      )
    : await cli(["proxy", "--config", file]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^wg-egress: cannot read config \S+ as uid \d+: permission denied; the file must be readable by this user \(the proxy: root:wg-egress-proxy, mode 0640\) and every directory above it searchable/,
  );
  assert.doesNotMatch(r.stderr, /pass an existing file/);
});

test("proxy: IPv4-mapped IPv6 rules are refused (they could never match); :PORT for metrics means loopback", () => {
  for (const key of ["allow", "deny"]) {
    const e = errorOf(() => parseConfig({ proxy: { destinations: { [key]: ["::ffff:10.0.0.0/104"] } } }));
    assert.match(e.message, new RegExp(`proxy\\.destinations\\.${key}\\[0\\].*write it as IPv4`));
  }
  assert.match(
    errorOf(() => parseConfig({ proxy: { allowClients: ["::ffff:0:0/96"] } })).message,
    /allowClients/,
  );
  // a rule that only contains the mapped range is fine: it matches IPv6 destinations
  assert.deepEqual(parseConfig({ proxy: { destinations: { allow: ["::/0"] } } }).proxy.destinations.allow, [
    "::/0",
  ]);
  assert.equal(String(parseConfig({ proxy: { metrics: ":9587" } }).proxy.metrics), "127.0.0.1:9587");
  assert.equal(String(parseConfig({ proxy: { metrics: "9587" } }).proxy.metrics), "127.0.0.1:9587");
  assert.equal(String(parseConfig({ proxy: { metrics: "0.0.0.0:9587" } }).proxy.metrics), "0.0.0.0:9587");
  assert.equal(parseConfig({}).proxy.limits.relayBufferMiB, 32);
  assert.match(errorOf(() => parseConfig({ proxy: { auth: "maybe" } })).message, /proxy\.auth/);
});
