#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { errorMessage, UserError } from "../util/errors.js";

type Register = (program: Command) => void;

/**
 * Each command's module is imported only when that command runs: loading every part (cloud client, age,
 * doctor, renderers) for every start would cost most of a second, and the lab and timers start us often.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  proxy: async () => (await import("./proxy.js")).registerProxy,
  gateway: async () => (await import("./gateway.js")).registerGateway,
  keygen: async () => (await import("./keys.js")).registerKeys,
  pubkey: async () => (await import("./keys.js")).registerKeys,
  exit: async () => (await import("./exit.js")).registerExit,
  secrets: async () => (await import("./secrets.js")).registerSecrets,
  doctor: async () => (await import("./doctor.js")).registerDoctor,
  render: async () => (await import("./render.js")).registerRender,
  lab: async () => (await import("./lab.js")).registerLab,
  metrics: async () => (await import("./metrics.js")).registerMetrics,
};

/** The command word in argv (skipping the value of --log-level), or undefined for bare help/version. */
function commandWord(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--log-level") i++;
    else if (!argv[i].startsWith("-")) return argv[i];
  }
  return undefined;
}

/** The installed package's own version (dist/src/cli/main.js → the package root). */
const { version } = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command()
  .name("wg-egress")
  .description("Send selected workloads out through another public IP: SOCKS5 proxy → WireGuard → exit VPS")
  .version(version)
  .option("--log-level <level>", "trace|debug|info|warn|error (also WG_EGRESS_LOG_LEVEL or config log.level)")
  .showHelpAfterError()
  .exitOverride()
  .hook("preAction", async (cmd) => {
    const level = cmd.opts().logLevel as string | undefined;
    // The logger (pino) is loaded only by commands that log: --help and --version never do.
    if (level) (await import("../util/log.js")).log.level = level;
  });

const args = process.argv.slice(2);
const word = commandWord(args);
// Bare --version needs no command; bare --help (or a typo) lists them all.
const versionOnly =
  !word &&
  args.some((a) => a === "-V" || a === "--version") &&
  !args.some((a) => a === "-h" || a === "--help");
const wanted = word && word in COMMANDS ? [COMMANDS[word]] : versionOnly ? [] : Object.values(COMMANDS);
const registers = new Set(await Promise.all(wanted.map((load) => load())));
for (const register of registers) register(program);

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
    (await import("../util/log.js")).log.debug({ err }, "unexpected error");
    process.exitCode = 1;
  }
}
