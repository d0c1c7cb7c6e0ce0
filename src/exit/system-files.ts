import type { ExitConfig } from "../config/exit-schema.js";

/**
 * PURE: the host-level files around the exit's network setup (src/exit/host.ts): a boot unit that reruns
 * the setup script, SSH hardening (keys only) and unattended security upgrades. cloud-init writes them with
 * write_files; `exit install --ssh` writes the same files over SSH.
 */

export const EXIT_UNIT = "wg-egress-exit.service";

export interface SystemFile {
  path: string;
  content: string;
  /** Octal string as cloud-init wants it. */
  permissions: string;
}

export function setupScriptPath(dir: string): string {
  return `${dir}/setup.sh`;
}

export function systemFiles(exit: ExitConfig, dir: string): SystemFile[] {
  return [
    {
      path: `/etc/systemd/system/${EXIT_UNIT}`,
      permissions: "0644",
      content: `[Unit]
Description=wg-egress exit: WireGuard ${exit.interface}, nftables, forwarding
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh ${setupScriptPath(dir)}
Environment=WG_EGRESS_EXIT_DIR=${dir}

[Install]
WantedBy=multi-user.target
`,
    },
    {
      path: "/etc/ssh/sshd_config.d/90-wg-egress.conf",
      permissions: "0644",
      content: `# wg-egress: SSH with keys only
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
`,
    },
    {
      path: "/etc/apt/apt.conf.d/20auto-upgrades",
      permissions: "0644",
      content: `APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
`,
    },
  ];
}
