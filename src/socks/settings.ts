import type { ProxyConfig } from "../config/proxy-schema.js";
import { ClientPolicy, defaultClientCidrs } from "../policy/clients.js";
import { DestinationPolicy } from "../policy/destination.js";
import { DestinationResolver } from "../policy/resolve.js";
import { type HostPort, parseHostPort } from "../util/hostport.js";
import { readUsersFile, UserStore } from "./users.js";

/**
 * Everything a connection consults, built once from the config. SIGHUP builds a new one and swaps
 * it in: new connections use it, established ones keep the one they started with.
 */
export interface ProxySettings {
  listen: HostPort[];
  users: UserStore;
  clients: ClientPolicy;
  destinations: DestinationPolicy;
  resolver: DestinationResolver;
  /** 0 = keepalive off. */
  keepaliveMs: number;
  /** 0 = relayed connections never time out. */
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  connectTimeoutMs: number;
  maxConnections: number;
  maxPerClient: number;
  httpConnect: boolean;
}

const ms = (seconds: number) => Math.round(seconds * 1000);

/** Reads the users file too; throws a UserError on a bad one. */
export function buildSettings(cfg: ProxyConfig): ProxySettings {
  const listen = cfg.listen.map((l) => parseHostPort(l) as HostPort);
  const users = [...cfg.users, ...(cfg.usersFile ? readUsersFile(cfg.usersFile) : [])];
  return {
    listen,
    users: new UserStore(users),
    clients: new ClientPolicy(cfg.allowClients.length > 0 ? cfg.allowClients : defaultClientCidrs(listen)),
    destinations: new DestinationPolicy(cfg.destinations),
    resolver: new DestinationResolver(cfg.dns),
    keepaliveMs: cfg.keepalive.enabled ? ms(cfg.keepalive.idleSeconds) : 0,
    idleTimeoutMs: ms(cfg.idleTimeoutSeconds),
    handshakeTimeoutMs: ms(cfg.handshakeTimeoutSeconds),
    connectTimeoutMs: ms(cfg.connectTimeoutSeconds),
    maxConnections: cfg.limits.maxConnections,
    maxPerClient: cfg.limits.maxPerClient,
    httpConnect: cfg.httpConnect,
  };
}
