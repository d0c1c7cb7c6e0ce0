import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { renderNixos } from "../../src/render/nixos.js";
import { run } from "../../src/util/run.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

/**
 * The NixOS module's package (built from a checkout when none is given) and its firewall (the proxy port
 * and the metrics ports that listen beyond loopback), evaluated by Nix with stand-ins for nixpkgs' lib and
 * pkgs that return what they were given.
 */

const dir = tempDir("wgetest-nixos-");

async function evaluate(configText: string, expr: string, cfg: string): Promise<unknown> {
  writeFileSync(join(dir, "wg-egress.nix"), configText);
  mkdirSync(join(dir, "checkout"), { recursive: true });
  writeFileSync(
    join(dir, "checkout", "package.json"),
    JSON.stringify({ name: "wg-egress", version: "9.8.7" }),
  );
  const r = await run(
    "nix-instantiate",
    [
      "--eval",
      "--strict",
      "--json",
      "-E",
      `
let
  lib = {
    mkEnableOption = d: { description = d; };
    mkOption = o: o;
    mkIf = c: v: if c then v else { };
    optionals = c: l: if c then l else [ ];
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    literalExpression = s: s;
    platforms.linux = [ "x86_64-linux" ];
    types = { package = "package"; str = "str"; int = "int"; bool = "bool"; path = "path"; listOf = t: "list"; nullOr = t: "nullOr"; };
  };
  pkgs = {
    buildNpmPackage = attrs: attrs;
    importNpmLock = { __functor = self: args: { lockOf = args.npmRoot; }; npmConfigHook = "importNpmLock-hook"; };
    nodejs_22 = "nodejs-22";
    wireguard-tools = "wg-tools"; wireguard-go = "wg-go"; iproute2 = "iproute2"; nftables = "nftables";
  };
  cfg = ${cfg};
  m = import ${join(dir, "wg-egress.nix")} { inherit lib pkgs; config.services.wg-egress = cfg; };
in ${expr}`,
    ],
    { allowFail: true },
  );
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const lan = parseConfig({
  proxy: { listen: ["10.1.0.1:1080"], metrics: "10.1.0.1:9587" },
  gateway: { metrics: "0.0.0.0:9586" },
});
const cfgWith = (metrics: boolean) =>
  `{ enable = true; src = ${join(dir, "checkout")}; configFile = "/etc/c.yaml"; proxyUid = 400; metrics.enable = ${metrics}; openFirewall = [ "lab0" ]; package = m.options.services.wg-egress.package.default; }`;

test("without a package of its own, the module builds wg-egress from the checkout in src", async () => {
  requireTools("nix-instantiate");
  const pkg = (await evaluate(
    renderNixos(lan),
    "m.options.services.wg-egress.package.default",
    cfgWith(true),
  )) as Record<string, unknown>;
  assert.equal(pkg.pname, "wg-egress");
  assert.equal(pkg.version, "9.8.7", "the checkout's own version");
  // Nix prints a path as its copy in the store.
  assert.match(String(pkg.src), /^\/nix\/store\/[a-z0-9]{32}-checkout$/);
  assert.deepEqual(pkg.npmDeps, { lockOf: pkg.src }, "dependencies from its package-lock.json");
  assert.equal(pkg.npmConfigHook, "importNpmLock-hook");
  assert.equal(pkg.nodejs, "nodejs-22");
  assert.equal((pkg.meta as { mainProgram: string }).mainProgram, "wg-egress");
});

test("openFirewall opens the proxy port and the metrics ports that listen beyond loopback", async () => {
  requireTools("nix-instantiate");
  const ports = (metrics: boolean) =>
    evaluate(
      renderNixos(lan),
      "m.config.networking.firewall.interfaces.lab0.allowedTCPPorts",
      cfgWith(metrics),
    );
  assert.deepEqual(await ports(true), [1080, 9587, 9586]);
  assert.deepEqual(await ports(false), [1080, 9587], "no exporter, no exporter port");
  // Loopback metrics (the defaults) need no open port.
  const local = parseConfig({ proxy: { listen: ["10.1.0.1:1080"], metrics: "127.0.0.1:9587" } });
  assert.deepEqual(
    await evaluate(
      renderNixos(local),
      "m.config.networking.firewall.interfaces.lab0.allowedTCPPorts",
      cfgWith(true),
    ),
    [1080],
  );
});
