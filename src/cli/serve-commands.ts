/**
 * Long-running and cluster-facing commands: `vmgpu agent`, `device-plugin`,
 * `validate`, `kubevirt permitted-host-devices`, `kubevirt sync`, and the
 * guest licensing helper `guest cloud-init` (guest.ts). Flags of `agent` are
 * the contract with the Helm chart (docs/agent.md); each has an env fallback
 * (serve-flags.ts).
 */
import * as fs from 'node:fs';
import { stringify as toYaml } from 'yaml';
import type { Inventory } from '../inventory/types.js';
import { Agent } from '../serve/agent/agent.js';
import { parseConfigMapRef } from '../serve/agent/config-source.js';
import { resourceNamesOf, type ResourceNames } from '../serve/agent/desired.js';
import { StateStore } from '../serve/agent/state.js';
import { pluginsOnDisk, validateMachine, type ValidationTarget } from '../serve/agent/validation.js';
import { formatReport } from '../serve/agent/validator.js';
import { runDevicePlugins } from '../serve/deviceplugin/manager.js';
import { passthroughNamer } from '../serve/deviceplugin/passthrough-name.js';
import { messageOf } from '../serve/errors.js';
import { checkObjectName, describeApiError } from '../serve/kube/kube.js';
import { jsonLogger } from '../serve/kube/logger.js';
import { DEFAULT_PLUGIN_DIR } from '../serve/kubelet/device-plugin-api.js';
import { DEFAULT_POD_RESOURCES_SOCKET } from '../serve/kubelet/pod-resources.js';
import { permittedHostDevices } from '../serve/kubevirt/permitted.js';
import { DEFAULT_CDI_DIR } from '../serve/dra/cdi.js';
import { DraDriver, type DraDriverOptions } from '../serve/dra/driver.js';
import { KUBELET_PLUGINS_DIR, KUBELET_REGISTRY_DIR } from '../serve/kubelet/dra-api.js';
import type { Logger } from '../serve/kube/logger.js';
import { KubevirtSync } from '../serve/kubevirt/sync.js';
import { write, type Command } from './command.js';
import { driverTools, openMachine, DEFAULT_STATE_DIR, GLOBAL_OPTIONS, type GlobalFlags } from './context.js';
import { CliError, EXIT } from './exit-codes.js';
import { guestCloudInitCommand } from './guest.js';
import { configFromFlags, duration, kubeClient, logLevel, str, syncTarget, untilSignal } from './serve-flags.js';

const AGENT_OPTIONS = {
  ...GLOBAL_OPTIONS,
  'node-name': { type: 'string' },
  kubeconfig: { type: 'string' },
  'config-file': { type: 'string' },
  'config-map': { type: 'string' },
  'catalog-map': { type: 'string' },
  'default-config': { type: 'string' },
  'device-plugin-dir': { type: 'string' },
  'pod-resources-socket': { type: 'string' },
  'no-kubelet': { type: 'boolean' },
  iommufd: { type: 'boolean' },
  'metrics-addr': { type: 'string' },
  'log-level': { type: 'string' },
  'validate-interval': { type: 'string' },
  'pending-recheck': { type: 'string' },
  'drift-check-interval': { type: 'string' },
  'kubevirt-sync': { type: 'boolean' },
  'kubevirt-namespace': { type: 'string' },
  'kubevirt-name': { type: 'string' },
  'lease-namespace': { type: 'string' },
  dra: { type: 'boolean' },
  'kubelet-registry-dir': { type: 'string' },
  'kubelet-plugins-dir': { type: 'string' },
  'cdi-dir': { type: 'string' },
} as const;

const SYNC_OPTIONS = {
  kubeconfig: { type: 'string' },
  watch: { type: 'boolean' },
  'kubevirt-namespace': { type: 'string' },
  'kubevirt-name': { type: 'string' },
  'lease-namespace': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

/** The config `validate` checks: -f FILE -c NAME, else what the agent last applied on this node. */
function validationTarget(v: Record<string, unknown>): ValidationTarget {
  const selected = configFromFlags(v);
  if (selected) return { file: selected.file, name: selected.config.name };
  try {
    const recorded = new StateStore(str(v, 'state-dir', 'VMGPU_STATE_DIR') ?? DEFAULT_STATE_DIR).load();
    return recorded ? { desired: recorded } : { unavailable: 'no config: pass -f FILE -c NAME (no agent state found in the state dir)' };
  } catch (err) {
    return { unavailable: `the config cannot be planned: ${messageOf(err)}` };
  }
}

/** Resource-name overrides from `-f FILE -c NAME` (none without -f). */
function resourceNamesFromFlags(v: Record<string, unknown>, inv: Inventory): ResourceNames {
  const selected = configFromFlags(v, 'the config whose resource-names apply');
  return selected ? resourceNamesOf(selected.config, inv) : {};
}

/** The Node's allocatable, with API access and a node name; null (the check is skipped) without. */
async function nodeAllocatable(v: Record<string, unknown>): Promise<Record<string, string> | null> {
  const nodeName = str(v, 'node-name', 'NODE_NAME');
  if (!(v.kubeconfig || process.env.KUBERNETES_SERVICE_HOST) || !nodeName) return null;
  const kube = kubeClient(v, 'validate');
  try {
    const node = await kube.core.readNode({ name: checkObjectName(nodeName, '--node-name') });
    return node.status?.allocatable ?? {};
  } catch (err) {
    throw new CliError(`cannot read Node ${nodeName} for the allocatable check: ${describeApiError(err)}`);
  }
}

/** The in-process DRA driver (`--dra`), with the kubelet's directories from flags or env. */
function draDriver(v: Record<string, unknown>, o: Pick<DraDriverOptions, 'machine' | 'kube' | 'nodeName' | 'stateDir' | 'iommufd'> & { logger: Logger }): DraDriver {
  return new DraDriver({
    ...o,
    log: o.logger,
    paths: {
      registryDir: str(v, 'kubelet-registry-dir', 'VMGPU_KUBELET_REGISTRY_DIR') ?? KUBELET_REGISTRY_DIR,
      pluginsDir: str(v, 'kubelet-plugins-dir', 'VMGPU_KUBELET_PLUGINS_DIR') ?? KUBELET_PLUGINS_DIR,
    },
    cdiDir: str(v, 'cdi-dir', 'VMGPU_CDI_DIR') ?? DEFAULT_CDI_DIR,
  });
}

/** A `NAMESPACE/NAME` flag (--config-map, --catalog-map) or its env; null when unset. */
function mapRef(v: Record<string, unknown>, flag: string, env: string): { namespace: string; name: string } | null {
  const ref = str(v, flag, env);
  // A bad reference is an InputError: the exit-code table makes it exit 2.
  return ref ? parseConfigMapRef(ref, `--${flag}`) : null;
}

export const serveCommands: Record<string, Command> = {
  agent: {
    summary: 'run the node agent (DaemonSet): label-driven reconcile, device plugins, status, validator',
    usage:
      'vmgpu agent --node-name NAME [--kubeconfig FILE] [--config-file /etc/vmgpu/config/config.yaml | --config-map NS/NAME] [--default-config NAME] [--catalog-map NS/NAME]\n' +
      '       [--state-dir /var/lib/vmgpu] [--sysfs-root /sys] [--dev-root /dev] [--host-root /host] [--driver-root /host/driver] [--simulate DIR]\n' +
      '       [--device-plugin-dir DIR] [--pod-resources-socket PATH | --no-kubelet] [--iommufd] [--metrics-addr 0.0.0.0:9400] [--log-level info]\n' +
      '       [--validate-interval 5m] [--drift-check-interval 30s] [--kubevirt-sync --kubevirt-namespace kubevirt --kubevirt-name kubevirt --lease-namespace NS]\n' +
      '       [--dra [--kubelet-registry-dir /var/lib/kubelet/plugins_registry] [--kubelet-plugins-dir /var/lib/kubelet/plugins] [--cdi-dir /var/run/cdi]]',
    options: AGENT_OPTIONS,
    async run(v) {
      const nodeName = str(v, 'node-name', 'NODE_NAME');
      if (!nodeName) throw new CliError('give the node name with --node-name NAME (or env NODE_NAME, e.g. from the downward API spec.nodeName)');
      checkObjectName(nodeName, '--node-name');
      const level = logLevel(v);
      const logger = jsonLogger({ level, base: { component: 'agent', node: nodeName }, write: (l) => process.stdout.write(l) });
      const stateDir = str(v, 'state-dir', 'VMGPU_STATE_DIR') ?? DEFAULT_STATE_DIR;
      const flags: GlobalFlags = { ...(v as GlobalFlags), 'state-dir': stateDir };
      if (!flags['host-root'] && !flags.simulate && fs.existsSync('/host/proc')) flags['host-root'] = '/host';
      const tools = flags.simulate ? undefined : driverTools(flags);
      if (tools && !tools.found) logger.warn("the host driver's nvidia-smi is not reachable: vGPU types on full cards are named from the catalogs only", { why: tools.why });
      else if (tools) logger.info("naming vGPU types with the host driver's nvidia-smi", { nvidiaSmi: tools.nvidiaSmi });
      const machine = openMachine(flags, { driverTools: tools });
      const kube = kubeClient(v, 'agent');
      const configMap = mapRef(v, 'config-map', 'VMGPU_CONFIG_MAP');
      const catalogMap = mapRef(v, 'catalog-map', 'VMGPU_CATALOG_MAP');
      const iommufd = Boolean(v.iommufd) || process.env.VMGPU_IOMMUFD === 'true';
      const dra = v.dra || process.env.VMGPU_DRA === 'true' ? draDriver(v, { machine, kube, nodeName, stateDir, iommufd, logger }) : null;
      const agent = new Agent({
        nodeName,
        machine,
        kube,
        dra,
        configFile: str(v, 'config-file', 'VMGPU_CONFIG_FILE') ?? '/etc/vmgpu/config/config.yaml',
        configMap,
        catalogMap,
        defaultConfig: str(v, 'default-config', 'DEFAULT_VGPU_CONFIG'),
        stateDir,
        devicePluginDir: str(v, 'device-plugin-dir', 'VMGPU_DEVICE_PLUGIN_DIR') ?? DEFAULT_PLUGIN_DIR,
        podResourcesSocket: str(v, 'pod-resources-socket', 'VMGPU_POD_RESOURCES_SOCKET') ?? DEFAULT_POD_RESOURCES_SOCKET,
        noKubelet: Boolean(v['no-kubelet']) || process.env.VMGPU_NO_KUBELET === 'true',
        iommufd,
        metricsAddr: str(v, 'metrics-addr', 'VMGPU_METRICS_ADDR') ?? '0.0.0.0:9400',
        logger,
        validateIntervalMs: duration(v, 'validate-interval', 'VMGPU_VALIDATE_INTERVAL', '5m'),
        pendingRecheckMs: duration(v, 'pending-recheck', 'VMGPU_PENDING_RECHECK', '2s'),
        driftCheckMs: duration(v, 'drift-check-interval', 'VMGPU_DRIFT_CHECK_INTERVAL', '30s'),
      });
      let sync: KubevirtSync | null = null;
      if (v['kubevirt-sync'] || process.env.VMGPU_KUBEVIRT_SYNC === 'true') {
        const t = syncTarget(v);
        if (!t.leaseNamespace) throw new CliError('--kubevirt-sync needs --lease-namespace (or env POD_NAMESPACE)');
        sync = new KubevirtSync({ kube: kubeClient(v, 'kubevirt-sync'), ...t, leaseNamespace: t.leaseNamespace, logger });
      }
      await agent.start();
      sync?.start();
      return untilSignal(async () => {
        await sync?.stop();
        await agent.stop();
      });
    },
  },

  'device-plugin': {
    summary: 'serve the device plugins only (no reconcile): one kubelet resource per vGPU profile / passthrough model',
    usage: 'vmgpu device-plugin [--device-plugin-dir DIR] [--iommufd] [-f FILE -c NAME (resource-name overrides)] [--sysfs-root DIR | --simulate DIR] [--log-level info]',
    options: { ...GLOBAL_OPTIONS, 'device-plugin-dir': { type: 'string' }, iommufd: { type: 'boolean' }, file: { type: 'string', short: 'f' }, config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } },
    async run(v) {
      const logger = jsonLogger({ level: logLevel(v), base: { component: 'device-plugin' }, write: (l) => process.stdout.write(l) });
      const machine = openMachine(v as GlobalFlags);
      const inv = await machine.inventory();
      const resourceNames = resourceNamesFromFlags(v, inv);
      const m = await runDevicePlugins({
        inventory: inv,
        port: machine.port,
        pluginDir: (v['device-plugin-dir'] as string | undefined) ?? process.env.VMGPU_DEVICE_PLUGIN_DIR ?? DEFAULT_PLUGIN_DIR,
        resourceNames,
        iommufd: Boolean(v.iommufd),
        passthroughName: passthroughNamer(machine.pciIds),
        reread: () => machine.inventory({ mixedSizeMode: false }),
        logger,
      });
      return untilSignal(() => m.stop());
    },
  },

  validate: {
    summary: 'check that this node can give GPUs to VMs as configured (IOMMU, vfio, vfio-dev, profiles, plugins, allocatable); each failure says how to fix it',
    usage: 'vmgpu validate [--json] [-f FILE -c NAME] [--device-plugin-dir DIR] [--kubeconfig FILE --node-name NAME] [--sysfs-root DIR | --simulate DIR]',
    options: {
      ...GLOBAL_OPTIONS,
      json: { type: 'boolean' },
      file: { type: 'string', short: 'f' },
      config: { type: 'string', short: 'c' },
      'device-plugin-dir': { type: 'string' },
      kubeconfig: { type: 'string' },
      'node-name': { type: 'string' },
    },
    async run(v) {
      const target = validationTarget(v);
      const allocatable = await nodeAllocatable(v);
      const machine = openMachine(v as GlobalFlags);
      const dir = (v['device-plugin-dir'] as string | undefined) ?? process.env.VMGPU_DEVICE_PLUGIN_DIR ?? DEFAULT_PLUGIN_DIR;
      const nodeId = (v['node-name'] as string | undefined) ?? process.env.NODE_NAME ?? 'node';
      const report = await validateMachine(machine, target, nodeId, { plugins: (inv, names) => pluginsOnDisk(inv, names, machine.pciIds, dir), allocatable });
      write(v.json ? JSON.stringify(report, null, 2) : formatReport(report));
      return report.passed ? EXIT.OK : EXIT.FAILURE;
    },
  },

  'kubevirt permitted-host-devices': {
    summary: "print the permittedHostDevices entries for this node's resources (YAML to merge into the KubeVirt CR)",
    usage: 'vmgpu kubevirt permitted-host-devices [-f FILE -c NAME] [--json] [--sysfs-root DIR | --simulate DIR]',
    options: { ...GLOBAL_OPTIONS, file: { type: 'string', short: 'f' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' } },
    async run(v) {
      const machine = openMachine(v as GlobalFlags);
      const inv = await machine.inventory();
      const resourceNames = resourceNamesFromFlags(v, inv);
      const p = permittedHostDevices(inv, { resourceNames, pciIds: machine.pciIds });
      const doc = { spec: { configuration: { permittedHostDevices: p } } };
      write(v.json ? JSON.stringify(doc, null, 2) : `# merge into the KubeVirt CR (kubectl edit kubevirt -n kubevirt kubevirt), or run \`vmgpu kubevirt sync\`\n${toYaml(doc)}`);
      return EXIT.OK;
    },
  },

  'kubevirt sync': {
    summary: "merge every node's advertised resources into KubeVirt.spec.configuration.permittedHostDevices (only entries vmgpu added are ever removed)",
    usage: 'vmgpu kubevirt sync [--watch] [--kubeconfig FILE] [--kubevirt-namespace kubevirt] [--kubevirt-name kubevirt] [--lease-namespace NS] [--log-level info]',
    options: SYNC_OPTIONS,
    async run(v) {
      const t = syncTarget(v);
      const logger = jsonLogger({ level: logLevel(v), base: { component: 'kubevirt-sync' }, write: (l) => process.stdout.write(l) });
      const kube = kubeClient(v, 'kubevirt-sync');
      if (!v.watch) {
        const sync = new KubevirtSync({ kube, namespace: t.namespace, name: t.name, logger });
        let r;
        try {
          r = await sync.syncOnce();
        } catch (err) {
          throw new CliError(`kubevirt sync: ${describeApiError(err)}`);
        }
        for (const p of [...r.problems, ...r.conflicts]) process.stderr.write(`vmgpu: warning: ${p}\n`);
        write(r.changed ? `KubeVirt ${t.namespace}/${t.name} updated: ${r.added.length} entr(ies) added, ${r.removed.length} removed` : `KubeVirt ${t.namespace}/${t.name} already up to date`);
        return EXIT.OK;
      }
      if (!t.leaseNamespace) throw new CliError('kubevirt sync --watch needs --lease-namespace (or env POD_NAMESPACE) for its Lease');
      const sync = new KubevirtSync({ kube, namespace: t.namespace, name: t.name, leaseNamespace: t.leaseNamespace, logger });
      sync.start();
      return untilSignal(() => sync.stop());
    },
  },

  'guest cloud-init': guestCloudInitCommand,
};
