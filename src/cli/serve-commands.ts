/**
 * Long-running and cluster-facing commands: `vmgpu agent`, `device-plugin`,
 * `validate`, `kubevirt permitted-host-devices`, `kubevirt sync` and the
 * guest licensing helper `guest cloud-init`. Flags of `agent` are the
 * contract with the Helm chart (docs/agent.md); each has an env fallback.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { FileTooLargeError, formatBytes, readFileBounded } from '../io/files.js';
import { jsonLogger, type LogLevel } from '../serve/deviceplugin/logger.js';
import { runDevicePlugins } from '../serve/deviceplugin/manager.js';
import { DEFAULT_PLUGIN_DIR } from '../serve/deviceplugin/proto.js';
import { passthroughNamer } from '../serve/deviceplugin/passthrough-name.js';
import { permittedHostDevices } from '../serve/kubevirt/permitted.js';
import { Agent } from '../serve/agent/agent.js';
import { parseDuration } from '../serve/agent/backoff.js';
import { guestCloudInit, parseFeatureType } from '../serve/agent/cloud-init.js';
import { parseConfigMapRef } from '../serve/agent/config-source.js';
import { resolveDesired, resourceNamesOf } from '../serve/agent/desired.js';
import { checkNamespace, checkObjectName, describeApiError, Kube, loadKubeConfig } from '../serve/agent/kube.js';
import { DEFAULT_POD_RESOURCES_SOCKET } from '../serve/agent/podresources.js';
import { StateStore } from '../serve/agent/state.js';
import { formatReport, validateNode } from '../serve/agent/validator.js';
import { KubevirtSync } from '../serve/agent/kubevirt-sync.js';
import { pluginSocketName } from '../serve/deviceplugin/naming.js';
import { collectResources } from '../serve/deviceplugin/resources.js';
import { selectConfig } from '../spec/load.js';
import type { Inventory } from '../inventory/types.js';
import { write, type Command } from './command.js';
import { planFor } from '../plan/for-node.js';
import { isConfigError } from '../spec/config.js';
import { loadConfigOrNull } from './config-commands.js';
import { buildContext, DEFAULT_STATE_DIR, GLOBAL_OPTIONS, type GlobalFlags } from './context.js';
import { CliError, EXIT } from './exit-codes.js';

const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];
/** A client configuration token is a few KiB. */
const MAX_TOKEN_BYTES = 64 * 1024;
const USER_AGENT = 'vmgpu-agent';

const str = (v: Record<string, unknown>, k: string, env?: string): string | undefined => (v[k] as string | undefined) ?? (env ? process.env[env] || undefined : undefined);

function logLevel(v: Record<string, unknown>): LogLevel {
  const l = (str(v, 'log-level', 'LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(l)) throw new CliError(`--log-level ${l}: use one of ${LOG_LEVELS.join(', ')}`);
  return l;
}

function duration(v: Record<string, unknown>, k: string, env: string, def: string): number {
  try {
    return parseDuration(str(v, k, env) ?? def, `--${k}`);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

function kubeClient(v: Record<string, unknown>, component: string): Kube {
  try {
    return new Kube(loadKubeConfig(str(v, 'kubeconfig', 'KUBECONFIG')), { userAgent: `${USER_AGENT}/${component}` });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** Resolve once, then wait for SIGTERM/SIGINT and run `stop`. */
function untilSignal(stop: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    const onSig = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', onSig);
      process.off('SIGINT', onSig);
      process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'shutting down', signal: sig })}\n`);
      stop().then(
        () => resolve(EXIT.OK),
        () => resolve(EXIT.FAILURE),
      );
    };
    process.on('SIGTERM', onSig);
    process.on('SIGINT', onSig);
  });
}

const AGENT_OPTIONS = {
  ...GLOBAL_OPTIONS,
  'node-name': { type: 'string' },
  kubeconfig: { type: 'string' },
  'config-file': { type: 'string' },
  'config-map': { type: 'string' },
  'default-config': { type: 'string' },
  'device-plugin-dir': { type: 'string' },
  'pod-resources-socket': { type: 'string' },
  iommufd: { type: 'boolean' },
  'metrics-addr': { type: 'string' },
  'log-level': { type: 'string' },
  'validate-interval': { type: 'string' },
  'pending-recheck': { type: 'string' },
  'kubevirt-sync': { type: 'boolean' },
  'kubevirt-namespace': { type: 'string' },
  'kubevirt-name': { type: 'string' },
  'lease-namespace': { type: 'string' },
} as const;

const SYNC_OPTIONS = {
  kubeconfig: { type: 'string' },
  watch: { type: 'boolean' },
  'kubevirt-namespace': { type: 'string' },
  'kubevirt-name': { type: 'string' },
  'lease-namespace': { type: 'string' },
  'log-level': { type: 'string' },
} as const;

function syncTarget(v: Record<string, unknown>): { namespace: string; name: string; leaseNamespace: string | undefined } {
  try {
    const namespace = checkNamespace(str(v, 'kubevirt-namespace', 'KUBEVIRT_NAMESPACE') ?? 'kubevirt', '--kubevirt-namespace');
    const name = checkObjectName(str(v, 'kubevirt-name', 'KUBEVIRT_NAME') ?? 'kubevirt', '--kubevirt-name');
    const ln = str(v, 'lease-namespace', 'POD_NAMESPACE');
    return { namespace, name, leaseNamespace: ln ? checkNamespace(ln, '--lease-namespace') : undefined };
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** Resource-name overrides from `-f FILE -c NAME` (none without -f). */
function resourceNamesFromFlags(v: Record<string, unknown>, inv: Inventory): Record<string, string> {
  const file = loadConfigOrNull(v.file as string | undefined);
  if (!file) return {};
  const name = (v.config as string | undefined) ?? process.env.DEFAULT_VGPU_CONFIG;
  if (!name) throw new CliError('-f FILE needs -c NAME: the config whose resource-names apply');
  try {
    return resourceNamesOf({ name, entries: selectConfig(file, name), line: 0 }, inv);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.BAD_INPUT);
  }
}

export const serveCommands: Record<string, Command> = {
  agent: {
    summary: 'run the node agent (DaemonSet): label-driven reconcile, device plugins, status, validator',
    usage:
      'vmgpu agent --node-name NAME [--kubeconfig FILE] [--config-file /etc/vmgpu/config/config.yaml | --config-map NS/NAME] [--default-config NAME]\n' +
      '       [--state-dir /var/lib/vmgpu] [--sysfs-root /sys] [--dev-root /dev] [--host-root /host] [--simulate DIR]\n' +
      '       [--device-plugin-dir DIR] [--pod-resources-socket PATH] [--iommufd] [--metrics-addr 0.0.0.0:9400] [--log-level info]\n' +
      '       [--validate-interval 5m] [--kubevirt-sync --kubevirt-namespace kubevirt --kubevirt-name kubevirt --lease-namespace NS]',
    options: AGENT_OPTIONS,
    async run(v) {
      const nodeName = str(v, 'node-name', 'NODE_NAME');
      if (!nodeName) throw new CliError('give the node name with --node-name NAME (or env NODE_NAME, e.g. from the downward API spec.nodeName)');
      try {
        checkObjectName(nodeName, '--node-name');
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const level = logLevel(v);
      const logger = jsonLogger({ level, base: { component: 'agent', node: nodeName }, write: (l) => process.stdout.write(l) });
      const stateDir = str(v, 'state-dir', 'VMGPU_STATE_DIR') ?? DEFAULT_STATE_DIR;
      const flags: GlobalFlags = { ...(v as GlobalFlags), 'state-dir': stateDir };
      if (!flags['host-root'] && !flags.simulate && fs.existsSync('/host/proc')) flags['host-root'] = '/host';
      const ctx = buildContext(flags);
      const kube = kubeClient(v, 'agent');
      const cmRef = str(v, 'config-map', 'VMGPU_CONFIG_MAP');
      let configMap: { namespace: string; name: string } | null = null;
      if (cmRef) {
        try {
          configMap = parseConfigMapRef(cmRef);
        } catch (err) {
          throw new CliError((err as Error).message);
        }
      }
      const agent = new Agent({
        nodeName,
        ctx,
        kube,
        configFile: str(v, 'config-file', 'VMGPU_CONFIG_FILE') ?? '/etc/vmgpu/config/config.yaml',
        configMap,
        defaultConfig: str(v, 'default-config', 'DEFAULT_VGPU_CONFIG'),
        stateDir,
        devicePluginDir: str(v, 'device-plugin-dir', 'VMGPU_DEVICE_PLUGIN_DIR') ?? DEFAULT_PLUGIN_DIR,
        podResourcesSocket: str(v, 'pod-resources-socket', 'VMGPU_POD_RESOURCES_SOCKET') ?? DEFAULT_POD_RESOURCES_SOCKET,
        iommufd: Boolean(v.iommufd) || process.env.VMGPU_IOMMUFD === 'true',
        metricsAddr: str(v, 'metrics-addr', 'VMGPU_METRICS_ADDR') ?? '0.0.0.0:9400',
        logger,
        validateIntervalMs: duration(v, 'validate-interval', 'VMGPU_VALIDATE_INTERVAL', '5m'),
        pendingRecheckMs: duration(v, 'pending-recheck', 'VMGPU_PENDING_RECHECK', '2s'),
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
      const ctx = buildContext(v as GlobalFlags);
      const inv = await ctx.inventory();
      const resourceNames = resourceNamesFromFlags(v, inv);
      const m = await runDevicePlugins({
        inventory: inv,
        port: ctx.port,
        pluginDir: (v['device-plugin-dir'] as string | undefined) ?? process.env.VMGPU_DEVICE_PLUGIN_DIR ?? DEFAULT_PLUGIN_DIR,
        resourceNames,
        iommufd: Boolean(v.iommufd),
        passthroughName: passthroughNamer(ctx.pciIds),
        reread: () => ctx.inventory({ mixedSizeMode: false }),
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
      const ctx = buildContext(v as GlobalFlags);
      const inv = await ctx.inventory();
      // The config: -f/-c, else what the agent last applied on this node.
      let plan = null;
      let planUnavailable: string | undefined;
      let resourceNames: Record<string, string> = {};
      const file = loadConfigOrNull(v.file as string | undefined);
      try {
        if (file) {
          const name = (v.config as string | undefined) ?? process.env.DEFAULT_VGPU_CONFIG;
          if (!name) throw new CliError('-f FILE needs -c NAME');
          plan = (await planFor(ctx, file, name, (v['node-name'] as string | undefined) ?? process.env.NODE_NAME ?? 'node')).plan;
          resourceNames = resourceNamesOf({ name, entries: selectConfig(file, name), line: 0 }, inv);
        } else {
          const st = new StateStore(str(v, 'state-dir', 'VMGPU_STATE_DIR') ?? DEFAULT_STATE_DIR).load();
          if (st) {
            const r = resolveDesired(st);
            plan = (await planFor(ctx, r.file, r.config.name, (v['node-name'] as string | undefined) ?? process.env.NODE_NAME ?? 'node')).plan;
            resourceNames = resourceNamesOf(r.config, inv);
          } else planUnavailable = 'no config: pass -f FILE -c NAME (no agent state found in the state dir)';
        }
      } catch (err) {
        if (err instanceof CliError) throw err;
        if (isConfigError(err) && file) throw new CliError(err.message, EXIT.BAD_INPUT);
        planUnavailable = `the config cannot be planned: ${(err as Error).message}`;
      }
      // Device plugins: the sockets the agent would serve, in the plugin directory.
      const dir = (v['device-plugin-dir'] as string | undefined) ?? process.env.VMGPU_DEVICE_PLUGIN_DIR ?? DEFAULT_PLUGIN_DIR;
      const { resources } = collectResources(inv, { resourceNames, passthroughName: passthroughNamer(ctx.pciIds) });
      const plugins = fs.existsSync(dir)
        ? resources.map((r) => ({ resourceName: r.resourceName, registered: fs.existsSync(path.join(dir, pluginSocketName(r.resourceName))), devices: r.devices.length, healthy: r.devices.length }))
        : null;
      let allocatable: Record<string, string> | null = null;
      const nodeName = str(v, 'node-name', 'NODE_NAME');
      if ((v.kubeconfig || process.env.KUBERNETES_SERVICE_HOST) && nodeName) {
        const kube = kubeClient(v, 'validate');
        try {
          const node = await kube.core.readNode({ name: checkObjectName(nodeName, '--node-name') });
          allocatable = node.status?.allocatable ?? {};
        } catch (err) {
          throw new CliError(`cannot read Node ${nodeName} for the allocatable check: ${describeApiError(err)}`);
        }
      }
      const report = validateNode({ inventory: inv, plan, ...(planUnavailable ? { planUnavailable } : {}), plugins, allocatable });
      write(v.json ? JSON.stringify(report, null, 2) : formatReport(report));
      return report.passed ? EXIT.OK : EXIT.FAILURE;
    },
  },

  'kubevirt permitted-host-devices': {
    summary: "print the permittedHostDevices entries for this node's resources (YAML to merge into the KubeVirt CR)",
    usage: 'vmgpu kubevirt permitted-host-devices [-f FILE -c NAME] [--json] [--sysfs-root DIR | --simulate DIR]',
    options: { ...GLOBAL_OPTIONS, file: { type: 'string', short: 'f' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' } },
    async run(v) {
      const ctx = buildContext(v as GlobalFlags);
      const inv = await ctx.inventory();
      const resourceNames = resourceNamesFromFlags(v, inv);
      const p = permittedHostDevices(inv, { resourceNames, pciIds: ctx.pciIds });
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

  'guest cloud-init': {
    summary: 'print the cloud-init write_files block that licenses a vGPU guest (ClientConfigToken + gridd.conf)',
    usage: 'vmgpu guest cloud-init --token FILE [--feature-type 0|1|2|4]',
    options: { token: { type: 'string' }, 'feature-type': { type: 'string' } },
    async run(v) {
      const file = v.token as string | undefined;
      if (!file) throw new CliError('give the client configuration token with --token FILE (download it from your NVIDIA License Server instance)');
      let featureType;
      try {
        featureType = parseFeatureType(v['feature-type'] as string | undefined);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      let token: Buffer;
      try {
        token = readFileBounded(file, MAX_TOKEN_BYTES);
      } catch (err) {
        const why = err instanceof FileTooLargeError ? `it holds more than ${formatBytes(MAX_TOKEN_BYTES)}, and a client configuration token is a few KiB` : (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
        throw new CliError(`cannot read the token ${file}: ${why}`);
      }
      try {
        write(guestCloudInit(token, featureType, file));
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      return EXIT.OK;
    },
  },
};
