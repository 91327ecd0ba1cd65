/**
 * Kubelet device plugins for KubeVirt (issue 4). Entry points:
 *   runDevicePlugins(opts)          -> DevicePluginManager (`vmgpu device-plugin`, the agent)
 *   collectResources(inventory, ..) -> the resources and devices the plugins would serve
 * and, in ../kubevirt/permitted.ts, permittedHostDevices(inventory, config).
 */
export { runDevicePlugins, DevicePluginManager, type DevicePluginManagerOptions, type ResourceStatus } from './manager.js';
export { collectResources, validateResourceNames, pciSelector, type DeviceEntry, type ResourceSpec, type ResourceProblem, type ResourceNaming } from './resources.js';
export { resourceEnvVar, sriovResourceName, mdevResourceName, pluginSocketName, resourceNameProblem } from './naming.js';
export { allocateContainer, deviceSpecsFor, preferredAllocation, AllocationError } from './allocate.js';
export { jsonLogger, silentLogger, memoryLogger, type Logger } from './logger.js';
export { passthroughNamer, defaultPassthroughName } from './passthrough-name.js';
export { DEFAULT_PLUGIN_DIR, KUBELET_SOCKET, loadDevicePluginApi } from './proto.js';
