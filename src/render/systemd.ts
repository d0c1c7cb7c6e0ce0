import type { Config } from "../config/schema.js";
import type { RenderedFile } from "./files.js";
import { CONFIG, type Directives, EXEC, proxyUser, serviceSpecs } from "./services.js";

/** systemd units (for /etc/systemd/system) and the sysusers.d entry for the proxy's fixed uid. PURE. */

export interface SystemdOptions {
  /** The wg-egress executable (npm -g puts it in /usr/local/bin). */
  exec: string;
  /** The config file every unit reads. */
  configFile: string;
}

const section = (name: string, d: Directives) => `[${name}]\n${d.map(([k, v]) => `${k}=${v}\n`).join("")}`;

export function renderSystemd(config: Config, opts: SystemdOptions): RenderedFile[] {
  const fill = (v: string) => v.replaceAll(EXEC, opts.exec).replaceAll(CONFIG, opts.configFile);
  const units = serviceSpecs(config).map((s) => ({
    path: `systemd/system/${s.name}.service`,
    content: [
      "# Rendered by `wg-egress render systemd`.\n",
      section("Unit", [["Description", s.description], ...s.unit]),
      section(
        "Service",
        s.service.map(([k, v]) => [k, fill(v)]),
      ),
      section("Install", [["WantedBy", "multi-user.target"]]),
    ].join("\n"),
  }));
  const user = proxyUser(config);
  return [
    ...units,
    {
      path: "sysusers.d/wg-egress.conf",
      // The gateway marks this uid's connections: it must be fixed, not dynamic.
      content: `u ${user.name} ${user.uid} "wg-egress SOCKS5 proxy" - -\n`,
    },
  ];
}
