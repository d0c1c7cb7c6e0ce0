#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { errorMessage, UserError } from "../util/errors.js";
import { log } from "../util/log.js";
import { registerDoctor } from "./doctor.js";
import { registerExit } from "./exit.js";
import { registerGateway } from "./gateway.js";
import { registerKeys } from "./keys.js";
import { registerLab } from "./lab.js";
import { registerMetrics } from "./metrics.js";
import { registerProxy } from "./proxy.js";
import { registerRender } from "./render.js";
import { registerSecrets } from "./secrets.js";

const program = new Command()
  .name("wg-egress")
  .description("Send selected workloads out through another public IP: SOCKS5 proxy → WireGuard → exit VPS")
  .version("0.1.0")
  .option("--log-level <level>", "trace|debug|info|warn|error (also WG_EGRESS_LOG_LEVEL or config log.level)")
  .showHelpAfterError()
  .exitOverride()
  .hook("preAction", (cmd) => {
    const level = cmd.opts().logLevel as string | undefined;
    if (level) log.level = level;
  });

for (const register of [
  registerProxy,
  registerGateway,
  registerKeys,
  registerExit,
  registerSecrets,
  registerDoctor,
  registerRender,
  registerLab,
  registerMetrics,
]) {
  register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0; usage errors were already printed.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof UserError) {
    process.stderr.write(`wg-egress: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`wg-egress: ${errorMessage(err)}\n`);
    log.debug({ err }, "unexpected error");
    process.exitCode = 1;
  }
}
