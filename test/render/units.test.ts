import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderNixos } from "../../src/render/nixos.js";
import { renderSystemd } from "../../src/render/systemd.js";
import { run } from "../../src/util/run.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

const dir = tempDir("wgetest-render-");

const config = parseConfig({ proxy: { listen: ["10.1.0.1:1080"] } });
// systemd-analyze verify checks that ExecStart's program exists: use a real one.
const files = renderSystemd(config, { exec: process.execPath, configFile: "/etc/wg-egress/config.yaml" });

type Unit = Record<string, [string, string][]>;

/** INI → { section: [[key, value]] } */
function parseUnit(text: string): Unit {
  const out: Unit = {};
  let section = "";
  for (const line of text.split("\n")) {
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = s[1];
      out[section] = [];
    } else if (section && line.includes("="))
      out[section].push([line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]);
  }
  return out;
}
const unit = (name: string) =>
  parseUnit(files.find((f) => f.path === `systemd/system/${name}.service`)!.content);
const get = (u: Unit, section: string, key: string) =>
  u[section].filter(([k]) => k === key).map(([, v]) => v);

test("the proxy runs as the fixed unprivileged user, without capabilities, only while the gateway is up", () => {
  const p = unit("wg-egress-proxy");
  for (const [k, v] of [
    ["User", "wg-egress-proxy"],
    ["DynamicUser", "no"],
    ["CapabilityBoundingSet", ""],
    ["AmbientCapabilities", ""],
    ["NoNewPrivileges", "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "yes"],
    ["PrivateTmp", "yes"],
    ["LimitNOFILE", "65536"],
    ["ExecStart", `${process.execPath} proxy --config /etc/wg-egress/config.yaml`],
  ])
    assert.deepEqual(get(p, "Service", k), [v], k);
  assert.deepEqual(get(p, "Unit", "BindsTo"), ["wg-egress-gateway.service"]);
  assert.match(get(p, "Unit", "After")[0], /\bwg-egress-gateway\.service\b/);
  const sysusers = files.find((f) => f.path === "sysusers.d/wg-egress.conf")!.content;
  assert.match(sysusers, /^u wg-egress-proxy 400 /);
});

test("the gateway runs the agent after arming the kill switch, CAP_NET_ADMIN only, before the proxy", () => {
  const g = unit("wg-egress-gateway");
  assert.deepEqual(get(g, "Service", "Type"), ["exec"]);
  // Started (and the proxy let go) only once the kill switch is up; stopping keeps it (no ExecStop).
  assert.deepEqual(get(g, "Service", "ExecStartPre"), [
    `${process.execPath} gateway up --killswitch-only --config /etc/wg-egress/config.yaml`,
  ]);
  assert.deepEqual(get(g, "Service", "ExecStart"), [
    `${process.execPath} gateway run --config /etc/wg-egress/config.yaml`,
  ]);
  assert.deepEqual(get(g, "Service", "ExecStop"), []);
  assert.deepEqual(get(g, "Service", "Restart"), ["always"]);
  assert.deepEqual(get(g, "Unit", "StartLimitIntervalSec"), ["0"]);
  assert.deepEqual(get(g, "Service", "CapabilityBoundingSet"), ["CAP_NET_ADMIN"]);
  assert.deepEqual(get(g, "Unit", "Before"), ["wg-egress-proxy.service"]);
  const m = unit("wg-egress-metrics");
  assert.deepEqual(
    get(m, "Unit", "BindsTo"),
    [],
    "the exporter must keep reporting while the gateway is down",
  );
  assert.deepEqual(get(m, "Service", "CapabilityBoundingSet"), ["CAP_NET_ADMIN"]);
});

test("a proxy port below 1024 gets exactly CAP_NET_BIND_SERVICE", () => {
  const low = renderSystemd(parseConfig({ proxy: { listen: ["10.1.0.1:80"] } }), {
    exec: "/x",
    configFile: "/c",
  });
  const p = parseUnit(low.find((f) => f.path.endsWith("wg-egress-proxy.service"))!.content);
  assert.deepEqual(get(p, "Service", "CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"]);
  assert.deepEqual(get(p, "Service", "AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"]);
});

test("systemd-analyze verify accepts the units without a warning", async () => {
  requireTools("systemd-analyze");
  const unitDir = join(dir, "units");
  mkdirSync(unitDir);
  const paths = files
    .filter((f) => f.path.endsWith(".service"))
    .map((f) => {
      const p = join(unitDir, f.path.split("/").pop()!);
      writeFileSync(p, f.content);
      return p;
    });
  const r = await run("systemd-analyze", ["verify", ...paths], { allowFail: true });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim(), "", "unknown keys and bad values are only warnings: none allowed");
});

/** Evaluates the module with stand-ins for nixpkgs' lib and pkgs: enough to read its `config`. */
const evalModule = (metrics: boolean) => `
let
  lib = {
    mkEnableOption = d: { description = d; };
    mkOption = o: o;
    mkIf = c: v: if c then v else { };
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    types = { package = "package"; str = "str"; int = "int"; bool = "bool"; listOf = t: "list"; };
  };
  pkgs = { wireguard-tools = "wg-tools"; wireguard-go = "wg-go"; iproute2 = "iproute2"; nftables = "nftables"; };
  cfg = { enable = true; package = "/pkg"; configFile = "/etc/c.yaml"; proxyUid = 400; metrics.enable = ${metrics}; openFirewall = [ "lab0" ]; };
in (import ${join(dir, "wg-egress.nix")} { inherit lib pkgs; config.services.wg-egress = cfg; }).config
`;

test("the NixOS module parses and evaluates to the same services as the units", async () => {
  requireTools("nix-instantiate");
  writeFileSync(join(dir, "wg-egress.nix"), renderNixos(config));
  const parsed = await run("nix-instantiate", ["--parse", join(dir, "wg-egress.nix")], { allowFail: true });
  assert.equal(parsed.code, 0, parsed.stderr);
  const evaluated = async (metrics: boolean) => {
    const r = await run("nix-instantiate", ["--eval", "--strict", "--json", "-E", evalModule(metrics)], {
      allowFail: true,
    });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const nix = await evaluated(true);
  assert.equal(nix.users.users["wg-egress-proxy"].uid, 400);
  assert.equal(nix.users.groups["wg-egress-proxy"].gid, 400);
  assert.deepEqual(nix.networking.firewall.interfaces.lab0.allowedTCPPorts, [1080]);
  const units = renderSystemd(config, { exec: "/pkg/bin/wg-egress", configFile: "/etc/c.yaml" });
  for (const name of ["wg-egress-gateway", "wg-egress-proxy", "wg-egress-metrics"]) {
    const svc = parseUnit(units.find((f) => f.path.endsWith(`${name}.service`))!.content).Service;
    assert.deepEqual(nix.systemd.services[name].serviceConfig, Object.fromEntries(svc), name);
  }
  assert.deepEqual(nix.systemd.services["wg-egress-proxy"].bindsTo, ["wg-egress-gateway.service"]);
  assert.deepEqual(nix.systemd.services["wg-egress-gateway"].path, [
    "wg-tools",
    "wg-go",
    "iproute2",
    "nftables",
  ]);
  // mkIf false (the stand-in gives {}; the module system drops it).
  assert.deepEqual((await evaluated(false)).systemd.services["wg-egress-metrics"], {});
});
