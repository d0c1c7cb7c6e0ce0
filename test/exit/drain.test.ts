import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import { setConfigValues } from "../../src/exit/config-edit.js";
import { parseDeadline, planDrain, readDrain, replacementRefusal } from "../../src/exit/drain.js";
import { OperationError, UsageError } from "../../src/util/errors.js";
import { tempDir } from "../support/tmp.js";

const NOW = Date.parse("2026-11-30T12:00:00Z");

test("deadlines: durations from now, ISO times with an offset; anything else or the past is refused", () => {
  assert.equal(parseDeadline("48h", NOW), NOW + 48 * 3600_000);
  assert.equal(parseDeadline("90m", NOW), NOW + 90 * 60_000);
  assert.equal(parseDeadline("2d", NOW), NOW + 2 * 86_400_000);
  assert.equal(parseDeadline("1.5s", NOW), NOW + 1500);
  assert.equal(parseDeadline("2026-12-02T18:00:00Z", NOW), Date.parse("2026-12-02T18:00:00Z"));
  assert.equal(parseDeadline("2026-12-02T18:00:00+01:00", NOW), Date.parse("2026-12-02T17:00:00Z"));
  for (const bad of ["tomorrow", "48", "48 h", "-1h", "2026-12-02", "2026-12-02T18:00:00"])
    assert.throws(() => parseDeadline(bad, NOW), UsageError, bad);
  assert.throws(() => parseDeadline("0s", NOW), /not in the future/);
  assert.throws(() => parseDeadline("2026-11-30T11:00:00Z", NOW), /not in the future/);
});

const config = (extra: Record<string, unknown> = {}) =>
  parseConfig({
    exits: [
      { name: "one" },
      { name: "two", address: "10.100.1.2/24" },
      { name: "three", address: "10.100.2.2/24" },
    ],
    pools: { both: ["one", "two"] },
    routes: { default: "one", rules: [{ clients: ["10.1.0.66/32"], to: "two" }] },
    proxy: { dns: { servers: ["192.0.2.53"] } },
    ...extra,
  });

test("planDrain: the change to write, and a one-line refusal for what cannot be drained", () => {
  const p = planDrain(config(), "one", "three", Date.parse("2026-11-30T23:59:59.200Z"));
  assert.equal(p.index, 0);
  assert.deepEqual(
    p.drain,
    { to: "three", deadline: "2026-12-01T00:00:00Z" },
    "whole seconds, never earlier",
  );
  assert.equal(p.to?.name, "three");
  assert.deepEqual(
    planDrain(config(), "three", undefined).drain,
    {},
    "named by no route: no replacement needed",
  );
  const refuse = (cfg: ReturnType<typeof config>, exit: string, to: string | undefined, re: RegExp) =>
    assert.throws(
      () => planDrain(cfg, exit, to),
      (e: Error) => e instanceof UsageError && re.test(e.message),
    );
  refuse(config(), "four", "two", /exit drain four: no such exit \(known: one, two, three\)/);
  refuse(config(), "one", "both", /--to both: no such exit .*a pool is not a replacement/);
  refuse(config(), "one", "one", /cannot replace itself/);
  refuse(config(), "two", undefined, /exit two is named by routes\.rules\[0\].*give --to EXIT/);
  refuse(config(), "one", undefined, /routes\.default/);
  const threeDrains = config({
    exits: [
      { name: "one" },
      { name: "two", address: "10.100.1.2/24" },
      { name: "three", address: "10.100.2.2/24", drain: {} },
    ],
  });
  refuse(threeDrains, "one", "three", /exit three is draining itself/);
  refuse(config({ routes: undefined }), "one", undefined, /routes\.default/);
  refuse(parseConfig({}), "default", "two", /needs a second exit/);
});

test("replacementRefusal: only a replacement known healthy takes the connections", () => {
  const two = resolveExits(config().gateway, config().exits)[1];
  assert.equal(replacementRefusal(two, "healthy"), undefined);
  assert.match(
    replacementRefusal(two, "unknown") ?? "",
    /exit two has no fresh health report .*wge-two.*nothing was changed/,
  );
  assert.match(replacementRefusal(two, "unhealthy") ?? "", /exit two is not healthy/);
});

test("readDrain: the exit's drain state and open connections from the proxy's metrics", () => {
  const text = [
    "# HELP wg_egress_proxy_exit_open_connections Connections relaying now, by exit.",
    'wg_egress_proxy_exit_open_connections{exit="one"} 3',
    'wg_egress_proxy_exit_open_connections{exit="onex"} 9',
    'wg_egress_proxy_exit_open_connections{exit="two"} 0',
    'wg_egress_proxy_exit_draining{exit="one",to="two"} 1',
    'wg_egress_proxy_exit_draining{exit="two",to=""} 0',
    'wg_egress_proxy_exit_draining{exit="onex",to=""} 1',
    'wg_egress_proxy_exit_drain_deadline_seconds{exit="one"} 1796083200',
  ].join("\n");
  const deadline = "2026-12-01T00:00:00Z";
  assert.equal(Date.parse(deadline) / 1000, 1796083200);
  assert.deepEqual(readDrain(text, "one"), { drain: { to: "two", deadline }, open: 3 });
  assert.deepEqual(readDrain(text, "two"), { drain: null, open: 0 });
  assert.deepEqual(
    readDrain(text, "onex"),
    { drain: {}, open: 9 },
    "draining without replacement or deadline",
  );
  assert.throws(() => readDrain(text, "three"), OperationError);
});

test("the drain is written into the config file in place, idempotently, and removed again", () => {
  const file = join(tempDir("wgetest-drain-"), "config.yaml");
  writeFileSync(
    file,
    "# mine\nproxy:\n  dns:\n    servers: [192.0.2.53]\nexits:\n  - name: one # first\n  - name: two\n    address: 10.100.1.2/24\n",
  );
  const drain = { to: "two", deadline: "2026-12-01T00:00:00.000Z" };
  assert.deepEqual(setConfigValues(file, { "exits.0.drain": drain }), ["exits.0.drain"]);
  assert.deepEqual(setConfigValues(file, { "exits.0.drain": drain }), [], "already so: unchanged");
  const text = readFileSync(file, "utf8");
  assert.ok(text.includes("name: one # first"), text);
  const cfg = parseConfig(parseYaml(text));
  assert.deepEqual(cfg.exits?.[0].drain, drain);
  assert.deepEqual(setConfigValues(file, { "exits.0.drain": null }), ["exits.0.drain"]);
  assert.ok(!readFileSync(file, "utf8").includes("drain"));
});
