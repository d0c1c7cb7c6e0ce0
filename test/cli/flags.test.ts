import assert from "node:assert/strict";
import { test } from "node:test";
import { Command } from "commander";
import { addFlags, type Flag, number, overridesOf, repeatable } from "../../src/cli/flags.js";

const TABLE: Flag[] = [
  { flags: "--listen <host:port>", key: "proxy.listen", help: "listen address", parse: repeatable() },
  {
    flags: "--keepalive <seconds>",
    key: "proxy.keepalive.idleSeconds",
    help: "idle",
    parse: number("--keepalive", { integer: true }),
    toConfig: (v) => (typeof v === "number" ? v : undefined),
  },
  {
    flags: "--no-keepalive",
    key: "proxy.keepalive.enabled",
    help: "off",
    toConfig: (v) => (v === false ? false : undefined),
  },
  { flags: "--dry-run", help: "print only" },
  { flags: "--format <f>", help: "output", default: "text" },
];

function parse(args: string[]) {
  const cmd = addFlags(new Command("x").exitOverride(), TABLE).action(() => {});
  cmd.parse(args, { from: "user" });
  return { cmd, overrides: overridesOf(cmd, TABLE) };
}

test("only flags given on the command line become config overrides", () => {
  assert.deepEqual(parse([]).overrides, {});
  assert.deepEqual(parse(["--listen", "a:1", "--listen", "b:2"]).overrides, {
    "proxy.listen": ["a:1", "b:2"],
  });
  assert.deepEqual(parse(["--keepalive", "30"]).overrides, { "proxy.keepalive.idleSeconds": 30 });
  assert.deepEqual(parse(["--no-keepalive"]).overrides, { "proxy.keepalive.enabled": false });
  const { cmd, overrides } = parse(["--dry-run", "--format", "json"]);
  assert.deepEqual(overrides, {});
  assert.deepEqual(cmd.opts(), { dryRun: true, format: "json" });
});

test("a bad value is refused by its parser with the flag's name", () => {
  assert.throws(() => parse(["--keepalive", "soon"]), /--keepalive expects a whole number >= 0, got "soon"/);
});

test("help shows the schema's default for a keyed flag", () => {
  const help = addFlags(new Command("x"), TABLE).helpInformation();
  assert.match(help, /--listen <host:port>\s+listen address \(proxy\.listen; default: 127\.0\.0\.1:1080\)/);
  assert.match(help, /--keepalive <seconds>\s+idle \(proxy\.keepalive\.idleSeconds; default: 60\)/);
  assert.match(help, /--no-keepalive\s+off \(proxy\.keepalive\.enabled\)/);
  assert.match(help, /--format <f>\s+output \(default: "text"\)/);
  assert.doesNotMatch(help, /--no-keepalive.*default/);
});
