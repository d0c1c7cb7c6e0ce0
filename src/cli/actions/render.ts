import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { renderAlerts } from "../../render/alerts.js";
import { concatFiles } from "../../render/files.js";
import { renderGrafana } from "../../render/grafana.js";
import { renderK8s } from "../../render/k8s.js";
import { renderNixos } from "../../render/nixos.js";
import { renderSystemd } from "../../render/systemd.js";
import { UsageError } from "../../util/errors.js";
import type { Invocation } from "../command.js";

export interface RenderOpts {
  exec: string;
  configPath?: string;
  outDir?: string;
  namespace: string;
  name: string;
  address?: string;
  label?: string[];
}

type Run = Invocation<RenderOpts>;

const print = (text: string) => void process.stdout.write(text);

function labels(pairs: string[] = []): Record<string, string> {
  return Object.fromEntries(
    pairs.map((p) => {
      const i = p.indexOf("=");
      if (i < 1) throw new UsageError(`--label: expected KEY=VALUE, got "${p}"`);
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );
}

export async function nixos({ config }: Run): Promise<void> {
  print(renderNixos(await config()));
}

export async function systemd({ opts: o, config, configFile }: Run): Promise<void> {
  const files = renderSystemd(await config(), {
    exec: o.exec,
    configFile: o.configPath ?? resolve(configFile),
  });
  if (!o.outDir) return print(concatFiles(files));
  for (const f of files) {
    const path = join(o.outDir, f.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, f.content, { mode: 0o644 });
    print(`wrote ${path}\n`);
  }
}

export async function k8s({ opts: o, config }: Run): Promise<void> {
  const lbls = labels(o.label);
  print(
    renderK8s(await config(), { namespace: o.namespace, name: o.name, address: o.address, labels: lbls }),
  );
}

export async function grafana({ config }: Run): Promise<void> {
  print(renderGrafana(await config()));
}

export async function alerts({ config }: Run): Promise<void> {
  print(renderAlerts(await config()));
}
