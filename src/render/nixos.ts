import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import type { Config } from "../config/schema.js";
import type { HostPort } from "../util/hostport.js";
import { CONFIG, type Directives, EXEC, proxyUser, serviceSpecs } from "./services.js";

/**
 * A NixOS module equivalent to the seed's vpn-egress.nix: options enable, src, package (built from src by
 * default: buildNpmPackage with the lock file's own hashes, importNpmLock), configFile, proxyUid,
 * metrics.enable, openFirewall (the proxy port and the metrics ports that listen beyond loopback); the same
 * three services as `render systemd`. PURE.
 */

// biome-ignore lint/suspicious/noTemplateCurlyInString: Nix interpolation, not a JS template
const NIX_EXEC = "${cfg.package}/bin/wg-egress";
// biome-ignore lint/suspicious/noTemplateCurlyInString: Nix interpolation, not a JS template
const NIX_CONFIG = "${cfg.configFile}";

/** A Nix string literal; our placeholders become interpolations of the module's options. */
const nixString = (v: string) =>
  `"${v
    .replaceAll("\\", "\\\\")
    .replaceAll('"', '\\"')
    .replaceAll("${", "\\${")
    .replaceAll(EXEC, NIX_EXEC)
    .replaceAll(CONFIG, NIX_CONFIG)}"`;

const nixList = (items: readonly string[], raw = false) =>
  `[ ${items.map((i) => (raw ? i : nixString(i))).join(" ")} ]`;

/** Unit directives whose NixOS option takes a list of units. */
const UNIT_LISTS: Record<string, string> = {
  Wants: "wants",
  After: "after",
  Before: "before",
  BindsTo: "bindsTo",
  PartOf: "partOf",
};

function unitAttrs(unit: Directives): string[] {
  return unit.map(([k, v]) =>
    UNIT_LISTS[k] ? `${UNIT_LISTS[k]} = ${nixList(v.split(" "))};` : `unitConfig.${k} = ${nixString(v)};`,
  );
}

const indent = (lines: string[], n: number) => lines.map((l) => `${" ".repeat(n)}${l}`).join("\n");

/** The ports of listen addresses other hosts can reach (a loopback listener needs no open port). */
function reachablePorts(listens: readonly HostPort[]): number[] {
  return [
    ...new Set(
      listens.flatMap((hp) =>
        isIP(hp.host) && ipaddr.process(hp.host).range() === "loopback" ? [] : [hp.port],
      ),
    ),
  ];
}

export function renderNixos(config: Config): string {
  const user = proxyUser(config);
  const ports = reachablePorts(config.proxy.listen);
  const gatewayMetrics = reachablePorts([config.gateway.metrics]);
  const proxyMetrics = reachablePorts(config.proxy.metrics ? [config.proxy.metrics] : []).filter(
    (p) => !ports.includes(p),
  );
  const firewallPorts = [
    `[ ${[...ports, ...proxyMetrics].join(" ")} ]`,
    ...(gatewayMetrics.length ? [`lib.optionals cfg.metrics.enable [ ${gatewayMetrics.join(" ")} ]`] : []),
  ].join(" ++ ");
  const services = serviceSpecs(config).map((s) => {
    const body = [
      `description = ${nixString(s.description)};`,
      `wantedBy = [ "multi-user.target" ];`,
      ...unitAttrs(s.unit),
      ...(s.needs.length ? [`path = with pkgs; ${nixList(s.needs, true)};`] : []),
      "serviceConfig = {",
      ...s.service.map(([k, v]) => `  ${k} = ${nixString(v)};`),
      "};",
    ];
    const value = `{\n${indent(body, 6)}\n    }`;
    return `    systemd.services.${s.name} = ${s.name === "wg-egress-metrics" ? `lib.mkIf cfg.metrics.enable ${value}` : value};`;
  });
  return `# Rendered by \`wg-egress render nixos\`: the NixOS equivalent of the seed's vpn-egress.nix.
# Use: imports = [ ./wg-egress.nix ];
#      services.wg-egress = { enable = true; src = ./wg-egress; openFirewall = [ "lab0" ]; };
#      (src: a wg-egress checkout with its package-lock.json; or set package to a build of your own)
# Keep the config file out of the Nix store (it may hold proxy passwords): owner root, group ${user.name}, mode 0640.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.wg-egress;
  # Built from the checkout like upstream's own build (npm ci && npm run build); the dependencies come
  # from package-lock.json with the hashes it records, so no extra hash is needed here.
  build =
    src:
    pkgs.buildNpmPackage {
      pname = "wg-egress";
      version = (builtins.fromJSON (builtins.readFile (toString src + "/package.json"))).version;
      inherit src;
      nodejs = pkgs.nodejs_22;
      npmDeps = pkgs.importNpmLock { npmRoot = src; };
      npmConfigHook = pkgs.importNpmLock.npmConfigHook;
      meta = {
        description = "SOCKS5 proxy whose connections leave through a WireGuard tunnel, with a kill switch";
        mainProgram = "wg-egress";
        platforms = lib.platforms.linux;
      };
    };
in
{
  options.services.wg-egress = {
    enable = lib.mkEnableOption "wg-egress: a SOCKS5 proxy whose connections leave through a WireGuard tunnel, with a kill switch";
    src = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = lib.literalExpression "./wg-egress";
      description = "A wg-egress source checkout (with package-lock.json): the default package is built from it.";
    };
    package = lib.mkOption {
      type = lib.types.package;
      default =
        if cfg.src != null then
          build cfg.src
        else
          throw "services.wg-egress: set src (a wg-egress checkout) or package";
      defaultText = lib.literalExpression "built from services.wg-egress.src";
      description = "The wg-egress package (provides bin/wg-egress).";
    };
    configFile = lib.mkOption {
      type = lib.types.str;
      default = "/etc/wg-egress/config.yaml";
      description = "The wg-egress config file (a path outside the Nix store).";
    };
    proxyUid = lib.mkOption {
      type = lib.types.int;
      default = ${user.uid};
      description = "Fixed uid of the ${user.name} user; must equal gateway.proxyUid (the gateway marks this uid's connections).";
    };
    metrics.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Run the WireGuard exporter (wg-egress metrics, gateway.metrics, default 127.0.0.1:9586).";
    };
    openFirewall = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "lab0" ];
      description = "Interfaces on which the proxy port (${ports.join(", ")}) and the metrics ports that listen beyond loopback (${[...proxyMetrics, ...gatewayMetrics].join(", ") || "none"}) are opened in the NixOS firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.${user.name} = {
      isSystemUser = true;
      uid = cfg.proxyUid;
      group = "${user.name}";
      description = "wg-egress SOCKS5 proxy";
    };
    users.groups.${user.name}.gid = cfg.proxyUid;

    networking.firewall.interfaces = lib.genAttrs cfg.openFirewall (_: { allowedTCPPorts = ${firewallPorts}; });

${services.join("\n\n")}
  };
}
`;
}
