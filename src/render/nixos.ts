import type { Config } from "../config/schema.js";
import { parseHostPort } from "../util/hostport.js";
import { CONFIG, type Directives, EXEC, proxyUser, serviceSpecs } from "./services.js";

/**
 * A NixOS module equivalent to the seed's vpn-egress.nix: options enable, package, configFile,
 * proxyUid, metrics.enable, openFirewall; the same three services as `render systemd`. PURE.
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

export function renderNixos(config: Config): string {
  const user = proxyUser(config);
  const ports = [
    ...new Set(
      config.proxy.listen
        .map((l) => parseHostPort(l))
        .flatMap((hp) => (typeof hp === "string" ? [] : [hp.port])),
    ),
  ];
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
#      services.wg-egress = { enable = true; package = <wg-egress build>; openFirewall = [ "lab0" ]; };
# Keep the config file out of the Nix store (it may hold proxy passwords): owner root, group ${user.name}, mode 0640.
{ config, lib, pkgs, ... }:

let
  cfg = config.services.wg-egress;
in
{
  options.services.wg-egress = {
    enable = lib.mkEnableOption "wg-egress: a SOCKS5 proxy whose connections leave through a WireGuard tunnel, with a kill switch";
    package = lib.mkOption {
      type = lib.types.package;
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
      description = "Interfaces on which the proxy port (${ports.join(", ")}) is opened in the NixOS firewall.";
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

    networking.firewall.interfaces = lib.genAttrs cfg.openFirewall (_: { allowedTCPPorts = [ ${ports.join(" ")} ]; });

${services.join("\n\n")}
  };
}
`;
}
