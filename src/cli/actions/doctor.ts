import { failed } from "../../doctor/check.js";
import { formatResults } from "../../doctor/format.js";
import { runDoctor } from "../../doctor/run.js";
import { UsageError } from "../../util/errors.js";
import { type HostPort, parseHostPort } from "../../util/hostport.js";
import type { Invocation } from "../command.js";

export interface DoctorOpts {
  json?: boolean;
  ipEchoUrl?: string;
  ipCheck: boolean;
  proxy?: string;
  timeout: number;
  exit?: string;
}

export async function doctor({ opts: o, config: load, configFile }: Invocation<DoctorOpts>): Promise<void> {
  let proxy: HostPort | undefined;
  if (o.proxy) {
    const hp = parseHostPort(o.proxy);
    if (typeof hp === "string") throw new UsageError(`--proxy: ${hp}`);
    proxy = hp;
  }
  const config = await load();
  const url = o.ipEchoUrl ?? process.env.WG_EGRESS_IP_ECHO_URL ?? config.exit.homeIpUrls[0];
  const results = await runDoctor(config, {
    ipEchoUrl: o.ipCheck ? (url ?? null) : null,
    skipReason: o.ipCheck ? undefined : "skipped (--no-ip-check)",
    proxy,
    timeoutMs: o.timeout * 1000,
    configFile,
    exit: o.exit,
  });
  process.stdout.write(
    o.json
      ? `${JSON.stringify(results, null, 2)}\n`
      : formatResults(results, !!process.stdout.isTTY && !process.env.NO_COLOR),
  );
  if (failed(results)) process.exitCode = 1;
}
