import type { Command } from "commander";
import { failed } from "../doctor/check.js";
import { formatResults } from "../doctor/format.js";
import { runDoctor } from "../doctor/run.js";
import { UserError } from "../util/errors.js";
import { type HostPort, parseHostPort } from "../util/hostport.js";
import { addConfigOption, configFrom } from "./common.js";

interface DoctorOpts {
  config?: string;
  interface?: string;
  json?: boolean;
  ipEchoUrl?: string;
  ipCheck: boolean;
  proxy?: string;
  timeout: string;
}

export function registerDoctor(program: Command): void {
  addConfigOption(program.command("doctor"))
    .description(
      "check the whole path (tunnel, routes, rules, nft marking, kill switch, proxy, DNS, exit IP) and say how to fix what fails; exit 1 on failure",
    )
    .option("-i, --interface <name>", "WireGuard interface (gateway.interface)")
    .option("--json", "machine-readable output: [{name, verdict, evidence, fix}]")
    .option(
      "--ip-echo-url <url>",
      "service that answers with the caller's IP (default: $WG_EGRESS_IP_ECHO_URL, else exit.homeIpUrls[0])",
    )
    .option("--no-ip-check", "skip the request through the proxy")
    .option("--proxy <host:port>", "proxy address to test (default: proxy.listen[0])")
    .option("--timeout <seconds>", "per request", "10")
    .action(async (o: DoctorOpts) => {
      const config = configFrom(o, { "gateway.interface": o.interface });
      let proxy: HostPort | undefined;
      if (o.proxy) {
        const hp = parseHostPort(o.proxy);
        if (typeof hp === "string") throw new UserError(`--proxy: ${hp}`);
        proxy = hp;
      }
      const timeout = Number(o.timeout);
      if (!(timeout > 0)) throw new UserError(`--timeout: expected seconds > 0, got "${o.timeout}"`);
      const url = o.ipEchoUrl ?? process.env.WG_EGRESS_IP_ECHO_URL ?? config.exit.homeIpUrls[0];
      const results = await runDoctor(config, {
        ipEchoUrl: o.ipCheck ? (url ?? null) : null,
        skipReason: o.ipCheck ? undefined : "skipped (--no-ip-check)",
        proxy,
        timeoutMs: timeout * 1000,
        configFile: o.config,
      });
      process.stdout.write(
        o.json
          ? `${JSON.stringify(results, null, 2)}\n`
          : formatResults(results, !!process.stdout.isTTY && !process.env.NO_COLOR),
      );
      if (failed(results)) process.exitCode = 1;
    });
}
