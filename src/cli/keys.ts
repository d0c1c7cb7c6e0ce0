import type { Command } from "commander";
import { writeFileAtomic } from "../secrets/atomic.js";
import { UserError } from "../util/errors.js";
import { generatePrivateKey, isWireGuardKey, publicKeyOf } from "../wireguard/keys.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function registerKeys(program: Command): void {
  program
    .command("keygen")
    .description("create a WireGuard private key (as wg genkey); prints only the public key unless --print")
    .option("-o, --out <file>", "write the private key to FILE (mode 0600)")
    .option("--force", "replace an existing --out file")
    .option("--print", "print the private key to stdout (nothing else), like wg genkey")
    .action((o: { out?: string; force?: boolean; print?: boolean }) => {
      if (!o.out && !o.print)
        throw new UserError("where should the private key go? pass --out FILE (0600), or --print for stdout");
      const key = generatePrivateKey();
      const publicKey = publicKeyOf(key); // before anything is written: a failure leaves no file behind
      if (o.out) writeFileAtomic(o.out, `${key}\n`, 0o600, { exclusive: !o.force });
      process.stdout.write(o.print ? `${key}\n` : `${publicKey}\n`);
    });

  program
    .command("pubkey")
    .description("read a private key on stdin and print its public key (as wg pubkey)")
    .action(async () => {
      const key = (await readStdin()).trim();
      if (!isWireGuardKey(key))
        throw new UserError(
          "stdin is not a WireGuard private key (44 characters of base64, as from wg genkey)",
        );
      // Any other failure is ours (node:crypto), and its own message says what it was.
      process.stdout.write(`${publicKeyOf(key)}\n`);
    });
}
