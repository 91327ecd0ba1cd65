/**
 * `vmgpu import cozystack FILE`: read the `<bus-id>=<profile-id>` list used by
 * the Cozystack vgpu-profile-loader DaemonSet (seed 001) and turn it into a
 * config file, so users of that loader can switch without re-deciding their
 * layout. Numeric profile IDs are resolved to names on the node by the
 * caller (the CLI, from the inventory): IDs differ between driver versions,
 * names do not.
 *
 * Input is either the profiles text itself or the whole ConfigMap YAML (one
 * or more documents; the one with `data.profiles` is used).
 */
import { isMap, isScalar, LineCounter, type Node, type Scalar } from 'yaml';
import { parsePciAddress } from '../model/pci.js';
import { ConfigError, type ConfigEntry, type ConfigFile, type ConfigProblem, type VgpuDeviceRequest } from './config.js';
import { checkConfigName, parseProfileKey } from './grammar.js';
import { parseConfig, readTextFile } from './load.js';
import { serializeConfig } from './serialize.js';
import { parseYamlDocuments, TOO_DEEP_MESSAGE } from './yaml-reader.js';

/** One `<bus-id>=<profile-id>` line. */
export interface CozystackLine {
  /** Canonical VF address, e.g. `0000:02:00.4`. */
  busId: string;
  /** The driver's numeric vGPU type ID; 0 means "no type" (the VF is cleared). */
  profileId: number;
  /** Where the line is, for messages: the file given and the 1-based line/column in it. */
  file: string;
  line: number;
  column: number;
}

/** What the caller knows about one VF on this node. */
export interface CozystackVf {
  /** The VF's PF (the GPU), e.g. `0000:02:00.0`. */
  pf: string;
  /** The VF's index on the PF: the N of `virtfnN`. */
  vfIndex: number;
  /** The profile name for the line's ID on this VF (`L40S-12Q`, prefixes allowed); null only for ID 0. */
  profile: string | null;
}

/**
 * Resolve one line on this node: which PF and VF index the bus ID is, and the
 * profile name of the ID there. Return {error} (e.g. "no such device",
 * "ID 999 is not a vGPU type of this GPU") to report it against the line.
 */
export type CozystackResolver = (busId: string, profileId: number) => CozystackVf | { error: string };

/** Profile files larger than this are refused while reading (a node with 16 GPUs x 32 VFs needs about 10 KB). */
const MAX_COZYSTACK_BYTES = 1024 * 1024;

/**
 * A profiles file read line by line: the lines that parse, and the problems
 * of those that do not (null when none), so the caller can resolve the good
 * lines and report everything in one pass.
 */
export interface CozystackParse {
  lines: CozystackLine[];
  error: ConfigError | null;
}

/** Read and parse a profiles file (`-` reads standard input), bounded by MAX_COZYSTACK_BYTES. Throws ConfigError for a file it cannot read as a whole. */
export function loadCozystackFile(path: string): CozystackParse {
  const text = readTextFile(path, MAX_COZYSTACK_BYTES, 'profiles', 'Cozystack profile files');
  return parseCozystackLines(text, path === '-' ? '<stdin>' : path);
}

const YAML_START_RE = /^(---|%YAML|[A-Za-z_][A-Za-z0-9_.-]*\s*:(\s|$))/;

/** Parse a cozystack profiles file (plain lines or the ConfigMap YAML). Throws ConfigError listing every bad line. */
export function parseCozystackProfiles(text: string, filename: string): CozystackLine[] {
  const { lines, error } = parseCozystackLines(text, filename);
  if (error) throw error;
  return lines;
}

/**
 * Parse a cozystack profiles file, keeping the good lines beside the bad
 * ones. Throws ConfigError only when the file as a whole cannot be read
 * (YAML syntax, no data.profiles, no line at all).
 */
export function parseCozystackLines(text: string, filename: string): CozystackParse {
  if (typeof text !== 'string') throw new TypeError('parseCozystackLines: text must be a string');
  const firstMeaningful = text.split(/\r?\n/).find((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  if (firstMeaningful !== undefined && YAML_START_RE.test(firstMeaningful.trim())) {
    return fromConfigMap(text, filename);
  }
  return parseLines(text, filename, (i, col) => ({ line: i + 1, column: col }), () => '');
}

function parseLines(
  text: string,
  filename: string,
  where: (lineIndex: number, column: number) => { line: number; column: number },
  prefix: (lineIndex: number) => string,
): CozystackParse {
  const problems: ConfigProblem[] = [];
  const out: CozystackLine[] = [];
  const first = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const content = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (content === '') return;
    const col = raw.indexOf(content) + 1;
    const pos = where(i, col);
    const report = (path: string, message: string): void => {
      problems.push({ path, ...pos, message: `${prefix(i)}${message}` });
    };
    const eq = content.indexOf('=');
    if (eq < 0) {
      report('', `${JSON.stringify(content)} is not a <bus-id>=<profile-id> line, e.g. 0000:02:00.4=557`);
      return;
    }
    const bus = content.slice(0, eq).trim();
    const id = content.slice(eq + 1).trim();
    let busId: string;
    try {
      busId = parsePciAddress(bus);
    } catch {
      report('', `${JSON.stringify(bus)} is not a PCI bus ID: expected dddd:bb:dd.f in hex, e.g. 0000:02:00.4`);
      return;
    }
    if (!/^[0-9]{1,9}$/.test(id)) {
      report(busId, `profile ID ${JSON.stringify(id)} is not a number: expected the numeric vGPU type ID the loader wrote, e.g. 0000:02:00.4=557`);
      return;
    }
    const prev = first.get(busId);
    if (prev !== undefined) {
      report(busId, `listed twice (first on line ${prev}); keep one line per VF`);
      return;
    }
    first.set(busId, pos.line);
    out.push({ busId, profileId: Number(id), file: filename, line: pos.line, column: pos.column });
  });
  if (out.length === 0 && problems.length === 0) {
    throw new ConfigError(filename, [
      { path: '', line: 0, column: 0, message: `no <bus-id>=<profile-id> lines found; nothing to import` },
    ]);
  }
  return { lines: out, error: problems.length > 0 ? new ConfigError(filename, problems) : null };
}

/** The one `data.profiles` text block of the YAML's ConfigMap, or a positioned error. */
function profilesNode(docs: { contents: unknown }[], filename: string, at: (offset: number) => { line: number; column: number }): Scalar & { value: string } {
  const found: Node[] = [];
  for (const d of docs) {
    const root = d.contents;
    if (!isMap(root)) continue;
    const data = root.get('data', true);
    if (!isMap(data)) continue;
    const profiles = data.get('profiles', true);
    if (profiles !== undefined) found.push(profiles as Node);
  }
  if (found.length === 0) {
    throw new ConfigError(filename, [
      {
        path: 'data.profiles',
        line: 0,
        column: 0,
        message: 'no ConfigMap with data.profiles in this YAML: give the vgpu-profiles ConfigMap, or the profiles text itself',
      },
    ]);
  }
  if (found.length > 1) {
    const lines = found.map((n) => at(n.range?.[0] ?? 0).line).join(', ');
    throw new ConfigError(filename, [
      { path: 'data.profiles', ...at(found[1]!.range?.[0] ?? 0), message: `more than one data.profiles (lines ${lines}); import one ConfigMap at a time` },
    ]);
  }
  const node = found[0]!;
  if (!isScalar(node) || typeof node.value !== 'string') {
    throw new ConfigError(filename, [
      { path: 'data.profiles', ...at(node.range?.[0] ?? 0), message: 'expected a text block of <bus-id>=<profile-id> lines (profiles: |)' },
    ]);
  }
  return node as Scalar & { value: string };
}

function fromConfigMap(text: string, filename: string): CozystackParse {
  const lc = new LineCounter();
  const docs = parseYamlDocuments(text, { lineCounter: lc, prettyErrors: false, version: '1.2' });
  const at = (offset: number): { line: number; column: number } => {
    const p = lc.linePos(Math.max(0, offset));
    return { line: p.line, column: p.col };
  };
  if ('tooDeepAt' in docs) throw new ConfigError(filename, [{ path: '', ...at(docs.tooDeepAt), message: TOO_DEEP_MESSAGE }]);
  if (!Array.isArray(docs)) {
    throw new ConfigError(filename, [{ path: '', line: 1, column: 1, message: 'the file is empty' }]);
  }
  const syntax: ConfigProblem[] = [];
  for (const d of docs) for (const e of d.errors) syntax.push({ path: '', ...at(e.pos[0]), message: `YAML: ${e.message.split('\n')[0]}` });
  if (syntax.length > 0) throw new ConfigError(filename, syntax);

  const node = profilesNode(docs, filename, at);
  const value = node.value;
  const start = at(node.range?.[0] ?? 0);
  const fileLines = text.split(/\r?\n/);
  const valueLines = value.split(/\r?\n/);
  if (node.type === 'BLOCK_LITERAL') {
    // A literal block keeps lines one for one: content line i is file line header+1+i.
    return parseLines(
      value,
      filename,
      (i, col) => {
        const line = start.line + 1 + i;
        const raw = fileLines[line - 1] ?? '';
        const valueLine = valueLines[i] ?? '';
        const indent = raw.length - raw.trimStart().length;
        const lead = valueLine.length - valueLine.trimStart().length;
        return { line, column: raw.trim() === '' ? col : indent - lead + col };
      },
      () => '',
    );
  }
  // Other scalar styles fold lines; point at the scalar and name the line inside it.
  return parseLines(value, filename, () => start, (i) => `line ${i + 1} of data.profiles: `);
}

interface Placed {
  vfIndex: number;
  profile: string | null;
  line: number;
}

/** One line through the resolver: the VF it names and the profile it holds, or what is wrong with it. */
function placeLine(l: CozystackLine, resolve: CozystackResolver): { pf: string; vfIndex: number; profile: string | null } | { error: string } {
  let res: CozystackVf | { error: string };
  try {
    res = resolve(l.busId, l.profileId);
  } catch (err) {
    return { error: `cannot resolve: ${err instanceof Error ? err.message : String(err)}` };
  }
  if ('error' in res) return res;
  let pf: string;
  try {
    pf = parsePciAddress(res.pf);
  } catch {
    return { error: `the resolver gave an invalid PF address ${JSON.stringify(res.pf)}` };
  }
  if (!Number.isSafeInteger(res.vfIndex) || res.vfIndex < 0 || res.vfIndex > 65535) return { error: `the resolver gave an invalid VF index ${String(res.vfIndex)}` };
  if (l.profileId === 0) return { pf, vfIndex: res.vfIndex, profile: null };
  if (res.profile === null) return { error: `profile ID ${l.profileId} has no name on this VF` };
  const parsed = parseProfileKey(res.profile);
  if ('error' in parsed) return { error: `profile ID ${l.profileId} resolves to ${parsed.error}` };
  return { pf, vfIndex: res.vfIndex, profile: parsed.name };
}

/** One GPU's entry: counts per profile, and `vf-placement` only when the layout is not the natural one. */
function entryOf(pf: string, all: readonly Placed[], path: string): ConfigEntry {
  const placed = all.filter((p) => p.profile !== null).sort((a, b) => a.vfIndex - b.vfIndex);
  const vfs = new Map<string, number[]>();
  for (const p of placed) vfs.set(p.profile!, [...(vfs.get(p.profile!) ?? []), p.vfIndex]);
  const order = [...vfs.keys()];
  const vgpuDevices: VgpuDeviceRequest[] = order.map((p) => ({ profile: p, original: p, count: vfs.get(p)!.length }));
  let next = 0;
  const natural = order.every((p) => vfs.get(p)!.every((vf) => vf === next++));
  const sizes = new Set(
    order.map((p) => {
      const n = parseProfileKey(p);
      return 'error' in n ? p : n.framebufferGB;
    }),
  );
  return {
    deviceFilter: null,
    devices: 'all',
    pciAddresses: [pf],
    mode: 'vgpu',
    vgpuDevices,
    vfPlacement: natural ? {} : Object.fromEntries(order.map((p) => [p, vfs.get(p)!])),
    vgpuParams: {},
    resourceNames: {},
    passthroughResourceName: null,
    mixedSizes: sizes.size > 1 ? true : null,
    line: Math.min(...all.map((p) => p.line)),
    column: 1,
    path,
  };
}

/**
 * Turn parsed lines into a config named `configName`: one entry per GPU (by
 * `pci-addresses`), counting each profile. When the assignment is the
 * natural one (each type on a contiguous run of VFs from VF 0, types in order
 * of their first VF) plain counts are written; otherwise `vf-placement` keeps
 * every VF exactly where it was. Entries with different framebuffer sizes on
 * one GPU get `mixed-sizes: true`. Throws ConfigError listing every line the
 * resolver rejected, together with `parseError`'s lines (the file's lines that
 * did not parse), so one run reports every problem of the file.
 */
export function cozystackToConfig(lines: readonly CozystackLine[], resolve: CozystackResolver, configName: string, parseError: ConfigError | null = null): ConfigFile {
  const file = parseError?.filename ?? lines[0]?.file ?? '<cozystack>';
  const badName = checkConfigName(configName);
  if (badName) throw new ConfigError(file, [{ path: '', line: 0, column: 0, message: badName }]);

  const problems: ConfigProblem[] = [...(parseError?.problems ?? [])];
  const byPf = new Map<string, Placed[]>();
  const taken = new Map<string, number>();
  for (const l of lines) {
    const r = placeLine(l, resolve);
    if ('error' in r) {
      problems.push({ path: l.busId, line: l.line, column: l.column, message: r.error });
      continue;
    }
    const key = `${r.pf}/${r.vfIndex}`;
    const prevLine = taken.get(key);
    if (prevLine !== undefined) {
      problems.push({ path: l.busId, line: l.line, column: l.column, message: `is VF ${r.vfIndex} of ${r.pf}, like line ${prevLine}; keep one line per VF` });
      continue;
    }
    taken.set(key, l.line);
    byPf.set(r.pf, [...(byPf.get(r.pf) ?? []), { vfIndex: r.vfIndex, profile: r.profile, line: l.line }]);
  }
  if (problems.length > 0) throw new ConfigError(file, problems);

  const entries = [...byPf.keys()].sort().map((pf, i) => entryOf(pf, byPf.get(pf)!, `vgpu-configs.${configName}[${i}]`));
  const built: ConfigFile = { version: 'v1', filename: file, configs: [{ name: configName, entries, line: 0 }] };
  // Re-read what will be written, so the import never produces a file vmgpu would reject.
  return parseConfig(serializeConfig(built), `${file} (imported)`);
}
