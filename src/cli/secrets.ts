import type { Command } from "commander";

export function registerSecrets(program: Command): void {
  program.command("secrets").description("(not yet implemented)");
}
