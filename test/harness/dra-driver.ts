// The DRA driver run in the test process against the test node (test/harness/node.ts), on a
// simulated GPU node kept in memory, so a test can hold a device as a VM would, crash the
// driver and start it again on the same checkpoint, or reboot the hardware. It registers in the
// kubelet's plugins_registry (the node's directories seen from this side) and announces its
// endpoint as the kubelet sees it (/var/lib/kubelet/plugins/...). DeviceClasses come from the
// chart as `helm template` renders them with dra.enabled.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { openSimulated } from '../../src/machine/simulated.js';
import type { Machine } from '../../src/machine/machine.js';
import { DraDriver } from '../../src/serve/dra/driver.js';
import { Kube } from '../../src/serve/kube/kube.js';
import { memoryLogger } from '../../src/serve/kube/logger.js';
import { PciIds } from '../../src/inventory/pciids.js';
import type { SimulatedNode } from '../../src/simulator/index.js';
import type { DraPolicySpec } from '../../src/spec/dra-policy.js';
import { CHART } from './gpu-node.js';
import type { ResourceApi } from './dra-pods.js';
import type { TestNode } from './node.js';

export interface TestDriver {
  driver: DraDriver;
  machine: Machine;
  log: ReturnType<typeof memoryLogger>;
  stop(): Promise<void>;
}

/** Start a driver on `sim` with its state in `stateDir`; every GPU of the node in DRA mode unless `gpus` says otherwise. */
export async function startDraDriver(node: TestNode, sim: SimulatedNode, o: { stateDir: string; policy?: DraPolicySpec | null; gpus?: string[] }): Promise<TestDriver> {
  const machine = openSimulated(sim, { pciIds: PciIds.empty() });
  const log = memoryLogger();
  mkdirSync(o.stateDir, { recursive: true });
  const driver = new DraDriver({
    machine,
    kube: new Kube(node.cp.kubeConfig, { userAgent: 'vmgpu-test/dra' }),
    nodeName: node.name,
    stateDir: o.stateDir,
    paths: { registryDir: join(node.kubeletRoot, 'plugins_registry'), pluginsDir: join(node.kubeletRoot, 'plugins'), kubeletPluginsDir: '/var/lib/kubelet/plugins' },
    cdiDir: join(node.dir, 'cdi'),
    log,
    resyncMs: 0,
  });
  await driver.start();
  await driver.configure(o.gpus ?? sim.gpus.map((g) => g.pf.addr), o.policy ?? null);
  return { driver, machine, log, stop: () => driver.stop() };
}

/** The chart's DeviceClasses (dra.enabled), created through the API. */
export async function createChartDeviceClasses(node: TestNode, api: ResourceApi): Promise<string[]> {
  const r = spawnSync(node.tools.helm, ['template', 'vmgpu', CHART, '--set', 'dra.enabled=true'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: node.dir } });
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  const classes = parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as { kind?: string; metadata: { name: string } } | null)
    .filter((d): d is { kind: string; metadata: { name: string } } => d?.kind === 'DeviceClass');
  for (const c of classes) await api.createClass(c);
  return classes.map((c) => c.metadata.name);
}
