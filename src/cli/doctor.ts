import type { Command } from "commander";
import type { DoctorOpts } from "./actions/doctor.js";
import { defineCommand } from "./command.js";
import { INTERFACE, number } from "./flags.js";

export function registerDoctor(program: Command): void {
  defineCommand<DoctorOpts>(program, {
    name: "doctor",
    description:
      "check the whole path (tunnel, routes, rules, nft marking, kill switch, agent, proxy, DNS, exit IP) and say how to fix what fails; exit 1 on failure",
    flags: [
      INTERFACE,
      { flags: "--json", help: "machine-readable output: [{name, verdict, evidence, fix}]" },
      {
        flags: "--ip-echo-url <url>",
        help: "service that answers with the caller's IP (default: $WG_EGRESS_IP_ECHO_URL, else exit.homeIpUrls[0])",
      },
      { flags: "--no-ip-check", help: "skip the request through the proxy" },
      { flags: "--proxy <host:port>", help: "proxy address to test (default: proxy.listen[0])" },
      {
        flags: "--timeout <seconds>",
        help: "per request",
        parse: number("--timeout", { min: 0.001 }),
        default: 10,
      },
    ],
    run: async (inv) => (await import("./actions/doctor.js")).doctor(inv),
  });
}
