/**
 * Issue 11's matrix: the agent's reconcile and the CLI's apply and assert over
 * {host tools present, absent} x {catalog cache warm, cold} x {pod-resources
 * reachable, missing, erroring} x {card empty, partly used, full, full from the
 * shell loader} (cells.ts), each for a config that matches the card's vGPUs and
 * one that does not. In every cell: no held device is touched, no vGPU of an
 * unknown type is cleared, and the state (agent) or exit code (CLI) and the
 * message say what is going on. The CLI has no kubelet: its pods' VMs are
 * seen by their open VFIO groups, so it runs once per cell of the other axes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main, report } from '../../../src/cli/main.js';
import { EXIT } from '../../../src/cli/exit-codes.js';
import { PciIds } from '../../../src/inventory/pciids.js';
import { openSimulated } from '../../../src/machine/simulated.js';
import { reconcileDesired } from '../../../src/serve/agent/reconcile.js';
import { verdictOf } from '../../../src/serve/agent/status.js';
import { silentLogger } from '../../../src/serve/kube/logger.js';
import { loadSimulation, saveSimulation, type SimulatedNode } from '../../../src/simulator/index.js';
import { cellNode, cells, CONFIG_TEXT, CONFIGS, describeCell, deviceState, notAKubelet, POD, podsFor, stateDir, unnamed, waitsForHolders, type Cell, type ConfigName } from './cells.js';

let erroring: Awaited<ReturnType<typeof notAKubelet>>;
before(async () => {
  erroring = await notAKubelet();
});
after(() => erroring.close());

/** The VFs whose type the node cannot name, read as the machine reads them. */
async function unknownVfs(sim: SimulatedNode, dir: string): Promise<string[]> {
  const inv = await openSimulated(sim, { stateDir: dir, pciIds: PciIds.empty() }).inventory();
  return inv.gpus.flatMap((g) => g.vfs.filter((v) => v.currentTypeId !== 0 && v.currentProfile === null).map((v) => v.address));
}

/** Held and unknown devices are as they were, and no write went to a held one. */
function untouched(what: string, sim: SimulatedNode, before: Map<string, string>, keep: string[], writesBefore: number): void {
  const now = deviceState(sim);
  for (const d of keep) assert.equal(now.get(d), before.get(d), `${what}: ${d} changed`);
  const writes = sim.writeLog().slice(writesBefore);
  for (const d of keep) assert.ok(!writes.some((w) => w.path.includes(d)), `${what}: a write went to ${d}`);
}

async function agentCell(c: Cell, config: ConfigName): Promise<void> {
  const what = `agent, ${describeCell(c)}, config ${config}`;
  const { sim, podHeld, vmHeld } = cellNode(c);
  const dir = await stateDir(c.cache);
  const unknown = await unknownVfs(sim, dir);
  assert.equal(unknown.length > 0, unnamed(c), `${what}: the cell's types are ${unnamed(c) ? 'unknown' : 'named'}`);
  const machine = openSimulated(sim, { stateDir: dir, pciIds: PciIds.empty() });
  const before = deviceState(sim);
  const w0 = sim.writes();
  const desired = { workload: 'vm-vgpu' as const, configName: config, configText: CONFIG_TEXT, fileName: 'config.yaml' };
  const out = await reconcileDesired({ machine, nodeId: 'n1', log: silentLogger, podsHolding: podsFor(c.pods, podHeld, erroring.socket) }, { desired, mode: 'reconcile' });
  const v = verdictOf(out, config);
  untouched(what, sim, before, [podHeld, vmHeld, ...unknown].filter((d): d is string => d !== null), w0);

  if (c.pods !== 'reachable') {
    assert.equal(v.state, 'failed', what);
    assert.match(v.reason, c.pods === 'missing' ? /pod-resources socket .* does not exist, so vmgpu cannot tell which devices pods hold/ : /pod-resources List on .* failed/, what);
    assert.equal(sim.writes(), w0, `${what}: nothing written without the kubelet's answer`);
  } else if (unnamed(c)) {
    assert.equal(v.state, 'failed', what);
    assert.match(v.reason, /vmgpu cannot name/, what);
    assert.match(v.reason, /Fix: .*nvidia-smi/, what);
    assert.equal(sim.writes(), w0, `${what}: nothing written to a GPU vmgpu cannot read`);
  } else if (waitsForHolders(c, config)) {
    assert.equal(v.state, 'pending', what);
    assert.match(v.reason, new RegExp(`${POD}|qemu-system-x86_64`), `${what}: the reason names who holds the devices`);
    assert.equal(sim.writes(), w0, `${what}: the GPU keeps its free vGPUs while it waits`);
  } else {
    assert.equal(v.state, 'success', `${what}: ${v.reason}`);
  }
}

for (const c of cells()) {
  void test(`agent: ${describeCell(c)}`, async () => {
    for (const config of CONFIGS) await agentCell(c, config);
  });
}

/** `vmgpu ARGS` in this process: exit code and what it printed. */
async function vmgpu(args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((out += s), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args).catch(report), out };
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
}

const PCI_IDS = path.resolve(import.meta.dirname, '..', '..', 'fixtures', 'pci.ids.sample');

async function cliCell(c: Omit<Cell, 'pods'>, config: ConfigName): Promise<void> {
  const what = `CLI, tools ${c.tools}, cache ${c.cache}, card ${c.card}, config ${config}`;
  const { sim, podHeld, vmHeld } = cellNode(c);
  if (podHeld) sim.hold(podHeld); // the pod's VM: an open VFIO group on the host
  const dir = await stateDir(c.cache);
  const unknown = await unknownVfs(sim, dir);
  const simDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cells-sim-'));
  saveSimulation(sim, simDir);
  const file = path.join(simDir, 'config.yaml');
  fs.writeFileSync(file, CONFIG_TEXT);
  const common = ['--simulate', simDir, '-f', file, '-c', config, '--state-dir', dir, '--pci-ids', PCI_IDS];
  const before = deviceState(sim);
  const apply = await vmgpu(['apply', ...common, '--wait', '0']);
  const after = loadSimulation(simDir);
  const keep = [podHeld, vmHeld, ...unknown].filter((d): d is string => d !== null);
  untouched(what, after, before, keep, 0);
  const check = await vmgpu(['assert', ...common]);
  if (unnamed(c)) {
    assert.equal(apply.code, EXIT.UNDETERMINED, `${what}: ${apply.out}`);
    assert.match(apply.out, /vmgpu cannot name/, what);
    assert.equal(check.code, EXIT.UNDETERMINED, `${what}: assert does not claim a mismatch it cannot know: ${check.out}`);
  } else if (waitsForHolders(c, config)) {
    assert.equal(apply.code, EXIT.BLOCKED, `${what}: ${apply.out}`);
    assert.match(apply.out, /qemu-system-x86_64/, `${what}: the output names who holds the devices`);
    assert.equal(check.code, EXIT.MISMATCH, `${what}: ${check.out}`);
  } else {
    assert.equal(apply.code, EXIT.OK, `${what}: ${apply.out}`);
    assert.equal(check.code, EXIT.OK, `${what}: ${check.out}`);
  }
}

for (const c of cells().filter((x) => x.pods === 'reachable')) {
  void test(`CLI: tools ${c.tools}, cache ${c.cache}, card ${c.card}`, async () => {
    for (const config of CONFIGS) await cliCell(c, config);
  });
}
