/**
 * The kubelet's DRA protocols, loaded at run time from proto/: plugin
 * registration (pluginregistration/v1), the DRA plugin service (dra/v1) and
 * device health (dra-health/v1). Message shapes keep the wire's snake_case
 * field names (keepCase).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { findProtoFile } from './proto-file.js';

/** The kubelet's default directories: where plugins announce themselves, and where they keep their sockets and data. */
export const KUBELET_REGISTRY_DIR = '/var/lib/kubelet/plugins_registry';
export const KUBELET_PLUGINS_DIR = '/var/lib/kubelet/plugins';

/** PluginInfo.type of a DRA driver. */
export const DRA_PLUGIN_TYPE = 'DRAPlugin';
/** The names the kubelet knows the services by ("supported versions" at registration). */
export const DRA_SERVICE = 'v1.DRAPlugin';
export const DRA_HEALTH_SERVICE = 'v1.DRAResourceHealth';

export interface ClaimMsg {
  namespace: string;
  uid: string;
  name: string;
}
export interface ClaimsRequestMsg {
  claims: ClaimMsg[];
}
export interface PreparedDeviceMsg {
  request_names: string[];
  pool_name: string;
  device_name: string;
  cdi_device_ids: string[];
  share_id?: string;
}
export interface PrepareResultMsg {
  devices: PreparedDeviceMsg[];
  error: string;
}
export interface PrepareResponseMsg {
  claims: Record<string, PrepareResultMsg>;
}
export interface UnprepareResponseMsg {
  claims: Record<string, { error: string }>;
}
export interface PluginInfoMsg {
  type: string;
  name: string;
  endpoint: string;
  supported_versions: string[];
}
export interface RegistrationStatusMsg {
  plugin_registered: boolean;
  error: string;
}
export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY';
export interface DeviceHealthMsg {
  device: { pool_name: string; device_name: string };
  health: HealthStatus;
  last_updated_time: number;
  health_check_timeout_seconds: number;
  message: string;
}
export interface WatchResourcesResponseMsg {
  devices: DeviceHealthMsg[];
}

export interface DraApi {
  registrationService: grpc.ServiceDefinition;
  draService: grpc.ServiceDefinition;
  healthService: grpc.ServiceDefinition;
  /** Client constructors, for tests and benchmarks that stand in for the kubelet. */
  RegistrationClient: grpc.ServiceClientConstructor;
  DraClient: grpc.ServiceClientConstructor;
  HealthClient: grpc.ServiceClientConstructor;
}

type Pkg = Record<string, unknown>;

function load(rel: string): Pkg {
  const def = protoLoader.loadSync(findProtoFile(rel), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, arrays: true });
  return grpc.loadPackageDefinition(def) as unknown as Pkg;
}

/** The service constructor at a dotted path in a loaded package. */
function service(pkg: Pkg, path: string, file: string): grpc.ServiceClientConstructor {
  let at: unknown = pkg;
  for (const part of path.split('.')) at = (at as Pkg | undefined)?.[part];
  if (typeof at !== 'function') throw new Error(`${file} does not define service ${path}`);
  return at as grpc.ServiceClientConstructor;
}

let cached: DraApi | undefined;

export function loadDraApi(): DraApi {
  if (cached) return cached;
  const files = {
    reg: join('proto', 'pluginregistration', 'v1', 'api.proto'),
    dra: join('proto', 'dra', 'v1', 'api.proto'),
    health: join('proto', 'dra-health', 'v1', 'api.proto'),
  };
  const reg = service(load(files.reg), 'pluginregistration.Registration', files.reg);
  const dra = service(load(files.dra), 'k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin', files.dra);
  const health = service(load(files.health), 'v1.DRAResourceHealth', files.health);
  cached = { registrationService: reg.service, draService: dra.service, healthService: health.service, RegistrationClient: reg, DraClient: dra, HealthClient: health };
  return cached;
}
