import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_CONFIG_PATH } from "../config/load.js";
import { renderAlerts } from "../render/alerts.js";
import { concatFiles } from "../render/files.js";
import { renderGrafana } from "../render/grafana.js";
import { renderK8s } from "../render/k8s.js";
import { renderNixos } from "../render/nixos.js";
import { renderSystemd } from "../render/systemd.js";
import { UserError } from "../util/errors.js";
import { addConfigOption, collect, configFrom } from "./common.js";

interface RenderOpts {
  config?: string;
  exec: string;
  configPath?: string;
  outDir?: string;
  namespace: string;
  name: string;
  address?: string;
  label?: string[];
}

const sub = (render: Command, name: string, description: string) =>
  addConfigOption(render.command(name)).description(description);

function labels(pairs: string[] = []): Record<string, string> {
  return Object.fromEntries(
    pairs.map((p) => {
      const i = p.indexOf("=");
      if (i < 1) throw new UserError(`--label: expected KEY=VALUE, got "${p}"`);
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );
}

export function registerRender(program: Command): void {
  const render = program
    .command("render")
    .description("print deployment files made from the config: nixos, systemd, k8s, grafana, alerts");

  sub(render, "nixos", "a NixOS module (services.wg-egress) running the gateway, proxy and exporter").action(
    (o: RenderOpts) => {
      process.stdout.write(renderNixos(configFrom(o)));
    },
  );

  sub(render, "systemd", "hardened systemd units (gateway, proxy, metrics) and the sysusers.d entry")
    .option("--exec <path>", "the wg-egress executable in ExecStart=", "/usr/local/bin/wg-egress")
    .option(
      "--config-path <path>",
      "config file the units read (default: --config made absolute, else /etc/wg-egress/config.yaml)",
    )
    .option("--out-dir <dir>", "write the files under DIR (e.g. /etc) instead of printing them")
    .action((o: RenderOpts) => {
      const files = renderSystemd(configFrom(o), {
        exec: o.exec,
        configFile: o.configPath ?? (o.config ? resolve(o.config) : DEFAULT_CONFIG_PATH),
      });
      if (!o.outDir) return void process.stdout.write(concatFiles(files));
      for (const f of files) {
        const path = join(o.outDir, f.path);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, f.content, { mode: 0o644 });
        process.stdout.write(`wrote ${path}\n`);
      }
    });

  sub(
    render,
    "k8s",
    "Service + EndpointSlice for the proxy, ScrapeConfigs, dashboard ConfigMap, PrometheusRule",
  )
    .option("--namespace <ns>", "namespace of every object", "infra")
    .option("--name <name>", "Service name: pods use <name>.<namespace>.svc", "egress-proxy")
    .option("--address <ip>", "the gateway's LAN address (default: from proxy.listen)")
    .option("--label <key=value>", "label for ScrapeConfig/PrometheusRule selectors (repeatable)", collect)
    .action((o: RenderOpts) => {
      process.stdout.write(
        renderK8s(configFrom(o), {
          namespace: o.namespace,
          name: o.name,
          address: o.address,
          labels: labels(o.label),
        }),
      );
    });

  sub(
    render,
    "grafana",
    "the Grafana dashboard JSON (import it, or use the ConfigMap from `render k8s`)",
  ).action((o: RenderOpts) => {
    process.stdout.write(renderGrafana(configFrom(o)));
  });

  sub(
    render,
    "alerts",
    "Prometheus alerting rules (rule_files); the same rules as the PrometheusRule",
  ).action((o: RenderOpts) => {
    process.stdout.write(renderAlerts(configFrom(o)));
  });
}
