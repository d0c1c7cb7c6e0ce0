import type { Command } from "commander";
import { defineCommand } from "./command.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

interface KeygenOpts {
  out?: string;
  force?: boolean;
  print?: boolean;
}

export function registerKeys(program: Command): void {
  defineCommand<KeygenOpts>(program, {
    name: "keygen",
    description: "create a WireGuard private key (as wg genkey); prints only the public key unless --print",
    usesConfig: false,
    flags: [
      { flags: "-o, --out <file>", help: "write the private key to FILE (mode 0600)" },
      { flags: "--force", help: "replace an existing --out file" },
      { flags: "--print", help: "print the private key to stdout (nothing else), like wg genkey" },
    ],
    run: async ({ opts: o }) => {
      const { UsageError } = await import("../util/errors.js");
      if (!o.out && !o.print)
        throw new UsageError(
          "where should the private key go? pass --out FILE (0600), or --print for stdout",
        );
      const { generatePrivateKey, publicKeyOf } = await import("../wireguard/keys.js");
      const key = generatePrivateKey();
      const publicKey = publicKeyOf(key); // before anything is written: a failure leaves no file behind
      if (o.out)
        (await import("../secrets/atomic.js")).writeFileAtomic(o.out, `${key}\n`, 0o600, {
          exclusive: !o.force,
        });
      process.stdout.write(o.print ? `${key}\n` : `${publicKey}\n`);
    },
  });

  defineCommand(program, {
    name: "pubkey",
    description: "read a private key on stdin and print its public key (as wg pubkey)",
    usesConfig: false,
    run: async () => {
      const { isWireGuardKey, publicKeyOf } = await import("../wireguard/keys.js");
      const key = (await readStdin()).trim();
      if (!isWireGuardKey(key)) {
        const { UsageError } = await import("../util/errors.js");
        throw new UsageError(
          "stdin is not a WireGuard private key (44 characters of base64, as from wg genkey)",
        );
      }
      // Any other failure is ours (node:crypto), and its own message says what it was.
      process.stdout.write(`${publicKeyOf(key)}\n`);
    },
  });
}
