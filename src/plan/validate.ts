/**
 * `vmgpu validate-config` beyond the file format: everything the planner
 * would refuse without looking at the node. Each vGPU entry is planned on
 * paper on every board it can meet (paper.ts) and is an error only when no
 * such board takes it; two entries are in conflict only where a board that
 * both apply to would be set differently by each (as assignGpus decides on
 * a node). Entries for boards vmgpu has no facts for are left to the node's
 * driver, with a note.
 */
import { allBoards, type BoardFacts } from '../model/boards.js';
import type { ConfigEntry, ConfigFile, NamedConfig } from '../spec/config.js';
import { parseProfile } from '../model/profile.js';
import { sameTarget } from '../spec/match.js';
import { boardTakes, candidateBoards, errorsOnPaper, filterFits, type PaperError, type PaperResult } from './paper.js';

const whereOf = (file: ConfigFile, e: ConfigEntry): string => `${file.filename}:${e.line}:${e.column}: ${e.path}`;

/** `a, b, c and 7 more`: a long list in one readable line. */
function listed(names: Iterable<string>, max = 30): string {
  const all = [...names];
  return all.length <= max ? all.join(', ') : `${all.slice(0, max).join(', ')} and ${all.length - max} more`;
}

/** What validation could not judge without the node, gathered so a big file yields a few lines. */
class Unchecked {
  readonly unknownBoards = new Set<string>();
  readonly unknownDevices = new Set<string>();
  readonly partial = new Map<string, Set<string>>();
  readonly mixed = new Set<string>();

  notes(): string[] {
    const out: string[] = [];
    if (this.unknownBoards.size) out.push(`not checked, vmgpu has no profile facts for their boards (the node's driver decides): ${listed(this.unknownBoards)}`);
    if (this.unknownDevices.size) out.push(`not checked, vmgpu has no facts for these devices (the node's driver decides): ${listed(this.unknownDevices)}`);
    for (const [model, names] of this.partial) out.push(`not fully checked, vmgpu's table of ${model} profiles is partial (the node's driver decides): ${listed(names)}`);
    for (const m of this.mixed) out.push(`${m} need mixed-size vGPU mode: add \`mixed-sizes: true\` unless the GPUs are already in it`);
    return out;
  }

  /** The entry meets no board vmgpu knows. */
  unknown(e: ConfigEntry): void {
    const names = e.vgpuDevices.map((r) => r.original);
    if (!e.deviceFilter?.length) for (const n of names) this.unknownBoards.add(n);
    else for (const f of e.deviceFilter) this.unknownDevices.add(`${f.vendorId}:${f.deviceId} (${names.join(', ')})`);
  }
}

/** Check every config of the file (or only the one named) without a node. */
export function validateOnPaper(file: ConfigFile, only: string | null = null): PaperResult {
  const errors: PaperError[] = [];
  const unchecked = new Unchecked();
  for (const c of file.configs) {
    if (only !== null && c.name !== only) continue;
    for (const e of c.entries) errors.push(...checkEntry(file, c, e, unchecked).map((message) => ({ where: whereOf(file, e), message })));
    errors.push(...conflicts(file, c.entries));
  }
  return { errors, notes: unchecked.notes() };
}

/** The boards vmgpu can judge the entry on (a partial table cannot refuse a name it lacks); the rest are noted. */
function judgedBoards(c: NamedConfig, e: ConfigEntry, unchecked: Unchecked): BoardFacts[] | null {
  const boards = candidateBoards(e);
  const names = e.vgpuDevices.map((r) => r.original);
  if (boards.length === 0) {
    unchecked.unknown(e);
    return null;
  }
  const timeSliced = e.vgpuDevices.filter((r) => parseProfile(r.profile)?.gpuInstanceSlices === null);
  if (e.mixedSizes === null && new Set(timeSliced.map((r) => r.profile)).size > 1) unchecked.mixed.add(`${names.join(' and ')} (config ${c.name})`);
  const judged = boards.filter((b) => !b.partial || boardTakes(b, e));
  for (const b of boards.filter((x) => !judged.includes(x))) {
    const set = unchecked.partial.get(b.model) ?? new Set<string>();
    for (const n of names) set.add(n);
    unchecked.partial.set(b.model, set);
  }
  return judged.length < boards.length && !e.deviceFilter ? null : judged;
}

/**
 * The entry's errors. Not filtered, it can only be meant for the boards of its
 * profiles: an error when none of them takes it. Filtered by device, it meets
 * a card of every device its filter names: an error for a device none of whose
 * boards takes it (0x25B6 is an A16 or an A2: either will do), unless the card
 * lacks its profiles and another entry takes that board instead (as the
 * planner passes over an entry a card cannot take).
 */
function checkEntry(file: ConfigFile, c: NamedConfig, e: ConfigEntry, unchecked: Unchecked): string[] {
  if (e.mode !== 'vgpu' || e.vgpuDevices.length === 0) return [];
  const boards = judgedBoards(c, e, unchecked);
  if (!boards || boards.length === 0) return [];
  const errors = new Map(boards.map((b) => [b, errorsOnPaper(file, e, b)]));
  const fine = (b: BoardFacts) => errors.get(b)!.length === 0;
  if (!e.deviceFilter) return boards.some(fine) ? [] : [...new Set([...errors.values()].flat())];
  const takenElsewhere = (b: BoardFacts) => !boardTakes(b, e) && c.entries.some((o) => o !== e && appliesTo(o, b) && errorsOnPaper(file, o, b).length === 0);
  const out = new Set<string>();
  for (const f of e.deviceFilter) {
    const ofDevice = boards.filter((b) => filterFits(f, b));
    if (ofDevice.some(fine)) continue;
    for (const b of ofDevice) if (!takenElsewhere(b)) for (const m of errors.get(b)!) out.add(m);
  }
  return [...out];
}

const everyGpu = (e: ConfigEntry): boolean => e.devices === 'all' && e.pciAddresses === null;
/** Valid only on some boards: it asks for profiles, or filters by device. */
const boardBound = (e: ConfigEntry): boolean => e.vgpuDevices.length > 0 || (e.deviceFilter !== null && e.deviceFilter.length > 0);

/**
 * Whether two entries select one GPU whenever they select any: their indices
 * and addresses overlap, and neither picks GPUs by index or address alone
 * while the other is bound to some boards (the GPU at that index may be
 * another board: NVIDIA's `devices: [0]` beside a device-filter entry).
 */
function alwaysShareAGpu(a: ConfigEntry, b: ConfigEntry): boolean {
  const indices = a.devices === 'all' || b.devices === 'all' || a.devices.some((i) => (b.devices as number[]).includes(i));
  const addresses = a.pciAddresses === null || b.pciAddresses === null || a.pciAddresses.some((x) => b.pciAddresses!.includes(x));
  const loose = (x: ConfigEntry) => !everyGpu(x) && !boardBound(x);
  return indices && addresses && !(loose(a) && boardBound(b)) && !(loose(b) && boardBound(a));
}

/** Whether `e` applies to a card of `board`: its filter (if any) selects it and the card offers its profiles. */
function appliesTo(e: ConfigEntry, board: BoardFacts): boolean {
  return (e.deviceFilter === null || e.deviceFilter.some((f) => filterFits(f, board))) && boardTakes(board, e);
}

/** Entries that would set one card differently on every node where they select it (assignGpus refuses them there). */
function conflicts(file: ConfigFile, entries: readonly ConfigEntry[]): PaperError[] {
  const out: PaperError[] = [];
  for (const [j, b] of entries.entries()) {
    for (const a of entries.slice(0, j)) {
      if (sameTarget(a, b) || !alwaysShareAGpu(a, b)) continue;
      const board = allBoards().find((x) => appliesTo(a, x) && appliesTo(b, x));
      if (!board) continue;
      out.push({ where: whereOf(file, b), message: `selects the same GPUs as ${a.path} (line ${a.line}) and sets them differently (both apply to an ${board.model}); a GPU takes one entry: narrow device-filter, devices or pci-addresses` });
      break;
    }
  }
  return out;
}
