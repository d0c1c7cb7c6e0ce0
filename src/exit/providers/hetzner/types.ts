/** The subset of the Hetzner Cloud API objects wg-egress reads (field names as the API sends them). */

export interface Price {
  net: string;
  gross: string;
}

export interface ServerTypePrice {
  location: string;
  price_hourly: Price;
  price_monthly: Price;
}

export interface ServerType {
  id: number;
  name: string;
  description: string;
  cores: number;
  memory: number;
  disk: number;
  architecture: string;
  deprecated: boolean;
  prices: ServerTypePrice[];
}

export interface Location {
  id: number;
  name: string;
  description: string;
  country: string;
  city: string;
  network_zone: string;
}

export interface SshKey {
  id: number;
  name: string;
  fingerprint: string;
  public_key: string;
  labels: Record<string, string>;
}

export type ActionStatus = "running" | "success" | "error";

export interface Action {
  id: number;
  command: string;
  status: ActionStatus;
  progress: number;
  started: string;
  finished: string | null;
  resources: { id: number; type: string }[];
  error: { code: string; message: string } | null;
}

export type ServerStatus =
  | "running"
  | "initializing"
  | "starting"
  | "stopping"
  | "off"
  | "deleting"
  | "migrating"
  | "rebuilding"
  | "unknown";

export interface Server {
  id: number;
  name: string;
  status: ServerStatus;
  created: string;
  labels: Record<string, string>;
  public_net: {
    ipv4: { id: number; ip: string; blocked: boolean; dns_ptr: string } | null;
    ipv6: { id: number; ip: string; blocked: boolean; dns_ptr: { ip: string; dns_ptr: string }[] } | null;
    firewalls: { id: number; status: "applied" | "pending" }[];
  };
  server_type: ServerType;
  datacenter: { id: number; name: string; location: Location };
  image: { id: number; name: string | null } | null;
}

export interface FirewallRule {
  direction: "in" | "out";
  protocol: "tcp" | "udp" | "icmp" | "esp" | "gre";
  /** A port or range "1024-2048"; null for icmp/esp/gre. */
  port: string | null;
  source_ips: string[];
  destination_ips: string[];
  description: string | null;
}

export type FirewallResource =
  | { type: "server"; server: { id: number } }
  | { type: "label_selector"; label_selector: { selector: string } };

export interface Firewall {
  id: number;
  name: string;
  labels: Record<string, string>;
  created: string;
  rules: FirewallRule[];
  applied_to: FirewallResource[];
}

/** GET /pricing, the parts we read: what a primary IP costs per location (billed on top of the server). */
export interface Pricing {
  currency: string;
  vat_rate: string;
  primary_ips: {
    type: "ipv4" | "ipv6";
    prices: { location: string; price_hourly: Price; price_monthly: Price }[];
  }[];
}

export interface Pagination {
  page: number;
  per_page: number;
  previous_page: number | null;
  next_page: number | null;
  last_page: number | null;
  total_entries: number | null;
}

export interface ApiErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> | null };
}

export interface CreateServerRequest {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  ssh_keys?: (string | number)[];
  user_data?: string;
  labels?: Record<string, string>;
  firewalls?: { firewall: number }[];
  start_after_create?: boolean;
  public_net?: { enable_ipv4: boolean; enable_ipv6: boolean };
}

export interface CreateServerResponse {
  server: Server;
  action: Action;
  next_actions: Action[];
  root_password: string | null;
}

export interface CreateFirewallRequest {
  name: string;
  labels?: Record<string, string>;
  rules?: FirewallRule[];
  apply_to?: FirewallResource[];
}
