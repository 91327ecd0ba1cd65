/**
 * The deployment facts of issue 11 as test inputs, each as production has it:
 * - host tools: the host driver's nvidia-smi reachable or not (the simulator's `nvidiaSmi`);
 * - the catalog cache: warm (this card and driver seen with free VFs before) or cold;
 * - pod-resources: the kubelet answers, its socket is missing (the real client on a path
 *   with no socket), or it errors (the real client against a socket that is not a kubelet);
 * - the card: empty, partly used (2 x L40S-12Q), full (2 x L40S-24Q), or full from the
 *   Cozystack shell loader (seed 001: IDs echoed into current_vgpu_type, never seen free).
 * On a card with vGPUs, a pod holds its first vGPU (known only to the kubelet) and a VM
 * its second (an open VFIO group, seen only from the host PID namespace).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { openSimulated } from '../../../src/machine/simulated.js';
import type { InUse } from '../../../src/plan/types.js';
import { podsHolding, PodResourcesClient } from '../../../src/serve/kubelet/pod-resources.js';
import { createSimulatedNode, type SimulatedNode } from '../../../src/simulator/index.js';
import { loadSeed001 } from '../../support/shell-loader.js';

export type Tools = 'present' | 'absent';
export type Cache = 'warm' | 'cold';
export type PodResources = 'reachable' | 'missing' | 'erroring';
export type Card = 'empty' | 'partly used' | 'full' | 'full from the shell loader';
export interface Cell {
  tools: Tools;
  cache: Cache;
  pods: PodResources;
  card: Card;
}

export const CONFIGS = ['l40s-24q', 'l40s-12q'] as const;
export type ConfigName = (typeof CONFIGS)[number];
export const CONFIG_TEXT = `version: v1
vgpu-configs:
  l40s-24q:
    - devices: all
      vgpu-devices:
        L40S-24Q: 2
  l40s-12q:
    - devices: all
      vgpu-devices:
        L40S-12Q: 4
`;
const PROFILE: Record<ConfigName, string> = { 'l40s-24q': 'L40S-24Q', 'l40s-12q': 'L40S-12Q' };
export const POD = 'tenant/vm-a';

export function cells(): Cell[] {
  const out: Cell[] = [];
  for (const tools of ['present', 'absent'] as const)
    for (const cache of ['warm', 'cold'] as const)
      for (const pods of ['reachable', 'missing', 'erroring'] as const)
        for (const card of ['empty', 'partly used', 'full', 'full from the shell loader'] as const) out.push({ tools, cache, pods, card });
  return out;
}

export const describeCell = (c: Cell): string => `tools ${c.tools}, cache ${c.cache}, pod-resources ${c.pods}, card ${c.card}`;

/** One L40S in the cell's state; the VFs a pod and a VM hold (null on an empty card). */
export function cellNode(c: Pick<Cell, 'tools' | 'card'>): { sim: SimulatedNode; podHeld: string | null; vmHeld: string | null } {
  const profiles = c.card === 'partly used' ? ['L40S-12Q', 'L40S-12Q'] : c.card === 'full' ? ['L40S-24Q', 'L40S-24Q'] : undefined;
  const sim = createSimulatedNode({ nvidiaSmi: c.tools === 'present', gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu', ...(profiles ? { profiles } : {}) }] });
  if (c.card === 'full from the shell loader') loadSeed001(sim, sim.gpus[0]!.pf.addr);
  if (c.card === 'empty') return { sim, podHeld: null, vmHeld: null };
  const [vf0, vf1] = sim.gpus[0]!.vfs.map((v) => v.fn.addr);
  sim.hold(vf1!);
  return { sim, podHeld: vf0!, vmHeld: vf1! };
}

/** A state dir whose catalog cache knows this card and driver (warm), or nothing (cold). */
export async function stateDir(cache: Cache): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cells-state-'));
  if (cache === 'warm') await openSimulated(createSimulatedNode({ gpus: [{ model: 'L40S', count: 1, mode: 'sriov-vgpu' }] }), { stateDir: dir }).inventory();
  return dir;
}

/** A socket that is not a kubelet: connections are closed at once (a kubelet restarting, the wrong file). */
export async function notAKubelet(): Promise<{ socket: string; close(): void }> {
  const socket = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vmgpu-cells-pr-')), 'kubelet.sock');
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(socket, r));
  return { socket, close: () => server.close() };
}

/** What the kubelet tells the agent, through the real client where it fails. */
export function podsFor(mode: PodResources, podHeld: string | null, erroringSocket: string): () => Promise<InUse> {
  if (mode === 'reachable') return async () => new Map(podHeld ? [[podHeld, `pod ${POD} (nvidia.com/L40S-24Q)`]] : []);
  const socket = mode === 'missing' ? '/nonexistent/var/lib/kubelet/pod-resources/kubelet.sock' : erroringSocket;
  return async () => {
    const client = new PodResourcesClient(socket, 2000);
    try {
      return await podsHolding(client, null, new Set());
    } finally {
      client.close();
    }
  };
}

/** The card's vGPUs have names no source of the node gives. */
export const unnamed = (c: Pick<Cell, 'tools' | 'cache' | 'card'>): boolean => (c.card === 'full' || c.card === 'full from the shell loader') && c.tools === 'absent' && c.cache === 'cold';

/** The profile the card's vGPUs have, or null on an empty card. */
const cardProfile = (c: Pick<Cell, 'card'>): string | null => (c.card === 'empty' ? null : c.card === 'partly used' ? 'L40S-12Q' : 'L40S-24Q');

/** The config asks for another profile than the held vGPUs have: the GPU must wait for them. */
export const waitsForHolders = (c: Pick<Cell, 'card'>, config: ConfigName): boolean => cardProfile(c) !== null && cardProfile(c) !== PROFILE[config];

/** Each device a VM could notice, by address: VF type and driver, the PF's driver. */
export function deviceState(sim: SimulatedNode): Map<string, string> {
  const out = new Map<string, string>();
  for (const g of sim.gpus) {
    out.set(g.pf.addr, `driver=${g.pf.driver}`);
    for (const v of g.vfs) out.set(v.fn.addr, `type=${v.typeId} driver=${v.fn.driver}`);
  }
  return out;
}
