import type { ExitTarget } from "../config/exit-hosts.js";
import type { Config } from "../config/schema.js";
import { exitSecretsOf, gatewayKeyOf } from "../secrets/data.js";
import { openSecretsStore } from "../secrets/store.js";
import { UsageError } from "../util/errors.js";
import { publicKeyOf } from "../wireguard/keys.js";
import type { ExitKeys } from "./host.js";

/**
 * An exit's keys for rendering: its private key from the secrets store; the gateway's public key from
 * the exit's gatewayPublicKey, or derived from the gateway private key stored for that exit.
 */
export async function exitKeysFromStore(config: Config, t: ExitTarget): Promise<ExitKeys> {
  const store = openSecretsStore(config.secrets);
  if (!store.exists())
    throw new UsageError(
      `no secrets store at ${store.file}: create the keys with wg-egress secrets init (or set secrets.file)`,
    );
  const data = await store.read();
  const own = exitSecretsOf(data, t.spec);
  if (!own)
    throw new UsageError(
      `${store.file} has no keys for exit ${t.spec.name}: create them with wg-egress secrets init --exit ${t.spec.name}`,
    );
  // An exit with its own gateway key file whose key the store lacks: its public key cannot be derived.
  if (
    !own.gatewayPrivateKey &&
    !t.host.gatewayPublicKey &&
    t.spec.privateKeyFile !== config.gateway.privateKeyFile
  )
    throw new UsageError(
      `exit ${t.spec.name} has its own gateway key (${t.spec.privateKeyFile}) and the store does not hold it: set its exit.gatewayPublicKey (wg pubkey < ${t.spec.privateKeyFile}), or create both keys with wg-egress secrets init --exit ${t.spec.name} --force`,
    );
  return {
    privateKey: own.privateKey,
    gatewayPublicKey: t.host.gatewayPublicKey ?? publicKeyOf(gatewayKeyOf(data, t.spec)),
  };
}
