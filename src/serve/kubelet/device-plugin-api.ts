/**
 * The kubelet device plugin API v1beta1, loaded at run time from
 * proto/deviceplugin/v1beta1/api.proto (the upstream package, service, message
 * and field names; snake_case fields kept as they are on the wire).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { findProtoFile } from './proto-file.js';

export const API_VERSION = 'v1beta1';
export const KUBELET_SOCKET = 'kubelet.sock';
export const DEFAULT_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';

export const DEVICE_PLUGIN_PROTO = join('proto', 'deviceplugin', 'v1beta1', 'api.proto');

// ---- message shapes (field names exactly as in api.proto)

export interface DevicePluginOptionsMsg {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}
export interface RegisterRequestMsg {
  version: string;
  endpoint: string;
  resource_name: string;
  options: DevicePluginOptionsMsg;
}
export interface DeviceMsg {
  ID: string;
  health: 'Healthy' | 'Unhealthy';
  topology?: { nodes: { ID: number }[] } | null;
}
export interface ListAndWatchResponseMsg {
  devices: DeviceMsg[];
}
export interface ContainerPreferredAllocationRequestMsg {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}
export interface PreferredAllocationRequestMsg {
  container_requests: ContainerPreferredAllocationRequestMsg[];
}
export interface PreferredAllocationResponseMsg {
  container_responses: { deviceIDs: string[] }[];
}
export interface AllocateRequestMsg {
  container_requests: { devices_ids: string[] }[];
}

export interface DevicePluginApi {
  /** Service definition to add to a grpc.Server. */
  devicePluginService: grpc.ServiceDefinition;
  /** Client constructor for the kubelet's Registration service. */
  RegistrationClient: grpc.ServiceClientConstructor;
  /** Client constructor for a plugin (tests, benchmarks). */
  DevicePluginClient: grpc.ServiceClientConstructor;
  registrationService: grpc.ServiceDefinition;
}

let cached: DevicePluginApi | undefined;

export function loadDevicePluginApi(): DevicePluginApi {
  if (cached) return cached;
  const file = findProtoFile(DEVICE_PLUGIN_PROTO);
  const def = protoLoader.loadSync(file, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as Record<string, Record<string, grpc.ServiceClientConstructor> | undefined>;
  const v1 = pkg[API_VERSION];
  const dp = v1?.['DevicePlugin'];
  const reg = v1?.['Registration'];
  if (!dp || !reg) throw new Error(`${file} does not define services ${API_VERSION}.DevicePlugin and ${API_VERSION}.Registration`);
  cached = { devicePluginService: dp.service, RegistrationClient: reg, DevicePluginClient: dp, registrationService: reg.service };
  return cached;
}

export function unixTarget(path: string): string {
  return `unix://${path}`;
}
