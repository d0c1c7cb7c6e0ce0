import type { Command } from "commander";
import type { RenderOpts } from "./actions/render.js";
import { defineCommand, type Invocation } from "./command.js";
import { repeatable } from "./flags.js";

type Action = keyof typeof import("./actions/render.js");
const run = (name: Action) => async (inv: Invocation<RenderOpts>) =>
  (await import("./actions/render.js"))[name](inv);

export function registerRender(program: Command): void {
  const render = program
    .command("render")
    .description("print deployment files made from the config: nixos, systemd, k8s, grafana, alerts");

  defineCommand(render, {
    name: "nixos",
    description: "a NixOS module (services.wg-egress) running the gateway, proxy and exporter",
    run: run("nixos"),
  });

  defineCommand(render, {
    name: "systemd",
    description: "hardened systemd units (gateway, proxy, metrics) and the sysusers.d entry",
    flags: [
      {
        flags: "--exec <path>",
        help: "the wg-egress executable in ExecStart=",
        default: "/usr/local/bin/wg-egress",
      },
      {
        flags: "--config-path <path>",
        help: "config file the units read (default: --config made absolute, else /etc/wg-egress/config.yaml)",
      },
      { flags: "--out-dir <dir>", help: "write the files under DIR (e.g. /etc) instead of printing them" },
    ],
    run: run("systemd"),
  });

  defineCommand(render, {
    name: "k8s",
    description: "Service + EndpointSlice for the proxy, ScrapeConfigs, dashboard ConfigMap, PrometheusRule",
    flags: [
      { flags: "--namespace <ns>", help: "namespace of every object", default: "infra" },
      {
        flags: "--name <name>",
        help: "Service name: pods use <name>.<namespace>.svc",
        default: "egress-proxy",
      },
      { flags: "--address <ip>", help: "the gateway's LAN address (default: from proxy.listen)" },
      {
        flags: "--label <key=value>",
        help: "label for ScrapeConfig/PrometheusRule selectors (repeatable)",
        parse: repeatable(),
      },
    ],
    run: run("k8s"),
  });

  defineCommand(render, {
    name: "grafana",
    description: "the Grafana dashboard JSON (import it, or use the ConfigMap from `render k8s`)",
    run: run("grafana"),
  });

  defineCommand(render, {
    name: "alerts",
    description: "Prometheus alerting rules (rule_files); the same rules as the PrometheusRule",
    run: run("alerts"),
  });
}
