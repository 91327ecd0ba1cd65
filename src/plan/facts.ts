/**
 * What vmgpu knows about a profile on one GPU: framebuffer, how many fit,
 * series, MIG-backed or not. The driver's own catalog wins where it says
 * something (mdev descriptions are exact); NVIDIA's documented board facts
 * fill the rest.
 */
import { boardForDevice, boardProfile, profileFact, type BoardFacts } from '../model/boards.js';
import type { Gpu, VgpuType } from '../inventory/types.js';
import type { ConfigEntry } from '../spec/config.js';

export interface ProfileFacts {
  profile: string;
  framebufferMiB: number | null;
  maxInstances: number | null;
  series: string;
  migBacked: boolean;
}

export function boardOf(g: Gpu): BoardFacts | undefined {
  return boardForDevice(g.pci.deviceId, g.pci.subsystemDeviceId);
}

/** Facts for `profile` on `g`; undefined when neither the node's catalog nor the board's facts know it. */
export function factsFor(g: Gpu, profile: string): ProfileFacts | undefined {
  const cat: VgpuType | undefined = g.catalog.find((t) => t.profile === profile);
  const board = boardOf(g);
  const fact = board ? boardProfile(board, profile) : profileFact(profile);
  if (!cat && !fact) return undefined;
  return {
    profile,
    framebufferMiB: cat?.framebufferMiB ?? fact?.framebufferMiB ?? null,
    maxInstances: cat?.maxInstances ?? fact?.maxInstances ?? null,
    series: fact?.series ?? cat?.series ?? 'unknown',
    migBacked: fact?.migBacked ?? cat?.migBacked ?? false,
  };
}

/** Every profile name the GPU is known to offer, for suggestions. */
export function knownProfiles(g: Gpu): string[] {
  return [...new Set([...(boardOf(g)?.profiles.map((f) => f.profile) ?? []), ...g.catalog.map((t) => t.profile)])];
}

/**
 * Framebuffer a vGPU takes from the board's total: its size when time-sliced.
 * A MIG-backed vGPU's memory is its GPU instance's share, which the names round
 * up (four H100L-1-24C fit in 94 GB): the max instances limit them instead.
 */
export function framebufferTaken(f: Pick<ProfileFacts, 'framebufferMiB' | 'migBacked'>): number {
  return f.migBacked ? 0 : (f.framebufferMiB ?? 0);
}

/** The board's total vGPU framebuffer, when its facts are known. */
export function boardFramebufferMiB(g: Gpu): number | null {
  return boardOf(g)?.framebufferMiB ?? null;
}

/** Whether the GPU offers every profile the entry asks for (an entry that asks for none fits any GPU). */
export function offersEntry(g: Gpu, e: ConfigEntry): boolean {
  return e.vgpuDevices.every((r) => factsFor(g, r.profile) !== undefined);
}
