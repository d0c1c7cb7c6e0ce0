import type { Command } from "commander";
import type { DoctorOpts } from "./actions/doctor.js";
import { defineCommand } from "./command.js";
import { EXIT_ALL, INTERFACE, number } from "./flags.js";

export function registerDoctor(program: Command): void {
  defineCommand<DoctorOpts>(program, {
    name: "doctor",
    description:
      "check the whole path (each exit's tunnel, routes, rules, nft marking, kill switch, agent and exit IP; the proxy, DNS) and say how to fix what fails; exit 1 on failure",
    flags: [
      INTERFACE,
      EXIT_ALL,
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
