/**
 * Read a config file (NVIDIA vgpu-device-manager `api/spec/v1` format plus
 * vmgpu's optional extensions) strictly: every unknown key, wrong type,
 * duplicate key or bad name becomes a problem with its key path, line and
 * column, and all of them are reported at once in a ConfigError.
 *
 * The reference for the format is docs/config.md.
 */
import { isMap, isScalar, LineCounter } from 'yaml';
import { FileTooLargeError, formatBytes, readFileBounded } from '../io/files.js';
import { ConfigError, type ConfigEntry, type ConfigFile, type ConfigProblem, type NamedConfig } from './config.js';
import { checkConfigName } from './grammar.js';
import { readDraPolicy } from './dra-policy.js';
import { readEntryList } from './entry.js';
import { didYouMean } from './suggest.js';
import { MAX_ALIAS_EXPANSIONS, parseYamlDocuments, ReaderAbort, TOO_DEEP_MESSAGE, YamlReader } from './yaml-reader.js';

/** Files larger than this are refused before parsing (NVIDIA's full example is ~54 KB). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
const ROOT_KEYS = ['version', 'vgpu-configs', 'dra'] as const;

/**
 * Parse config text. `filename` is used in messages only.
 * Throws ConfigError listing every problem, sorted by line.
 */
export function parseConfig(text: string, filename: string): ConfigFile {
  if (typeof text !== 'string') throw new TypeError('parseConfig: text must be a string');
  // The YAML parser spends ~20 µs per alias; refuse alias floods before parsing.
  const aliasTokens = text.match(/(?:^|[\s,[{:-])\*[^\s,[\]{}]+/g)?.length ?? 0;
  if (aliasTokens > MAX_ALIAS_EXPANSIONS) {
    throw new ConfigError(filename, [
      { path: '', line: 1, column: 1, message: `the file uses ${aliasTokens} aliases (*name); at most ${MAX_ALIAS_EXPANSIONS} are allowed: write the values out` },
    ]);
  }
  const lc = new LineCounter();
  const docs = parseYamlDocuments(text, {
    lineCounter: lc,
    prettyErrors: false,
    uniqueKeys: false, // duplicates are reported by the reader, with their key path
    strict: true,
    version: '1.2',
  });
  const at = (offset: number): { line: number; column: number } => {
    const p = lc.linePos(Math.max(0, offset));
    return { line: p.line, column: p.col };
  };
  if ('tooDeepAt' in docs) throw new ConfigError(filename, [{ path: '', ...at(docs.tooDeepAt), message: TOO_DEEP_MESSAGE }]);

  if (!Array.isArray(docs) || docs.length === 0) {
    throw new ConfigError(filename, [
      { path: '', line: 1, column: 1, message: 'the file is empty: expected "version: v1" and a "vgpu-configs" mapping' },
    ]);
  }
  const syntax: ConfigProblem[] = [];
  for (const d of docs) {
    for (const e of [...d.errors, ...d.warnings]) {
      syntax.push({ path: '', ...at(e.pos[0]), message: `YAML: ${e.message.split('\n')[0]}` });
    }
  }
  if (docs.length > 1) {
    syntax.push({
      path: '',
      ...at(docs[1]!.range[0]),
      message: `a config file holds one YAML document; this one has ${docs.length} (separated by "---")`,
    });
  }
  if (syntax.length > 0) throw new ConfigError(filename, syntax);

  const doc = docs[0]!;
  const r = new YamlReader(doc, lc);
  try {
    return readFile(r, doc.contents, filename);
  } catch (err) {
    if (err instanceof ReaderAbort) throw new ConfigError(filename, r.problems);
    throw err;
  }
}

function readFile(r: YamlReader, contents: unknown, filename: string): ConfigFile {
  const root = r.deref(contents, '');
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) {
    throw new ConfigError(filename, [
      { path: '', line: 1, column: 1, message: 'the file is empty: expected "version: v1" and a "vgpu-configs" mapping' },
    ]);
  }
  if (!isMap(root)) {
    r.wrongType('', root, 0, 'a mapping with "version" and "vgpu-configs"');
    throw new ConfigError(filename, r.problems);
  }
  const f = r.known(r.fields(root, ''), ROOT_KEYS, '');

  const version = f.get('version');
  if (!version) {
    r.report('', 0, 'missing required key "version": add "version: v1" at the top');
  } else if (!(version.value && isScalar(version.value) && version.value.value === 'v1')) {
    if (version.value && isScalar(version.value) && typeof version.value.value === 'string') {
      r.report(version.path, version.valueOffset, `unsupported version ${JSON.stringify(version.value.value)}: this vmgpu reads version v1`);
    } else {
      r.wrongType(version.path, version.value, version.valueOffset, 'v1');
    }
  }

  const configs: NamedConfig[] = [];
  const cf = f.get('vgpu-configs');
  if (cf) {
    if (cf.value === null || !isMap(cf.value)) {
      r.wrongType(cf.path, cf.value, cf.valueOffset, 'a mapping of config names to lists of entries');
    } else {
      const named = r.fields(cf.value, cf.path);
      if (named.length === 0 && cf.value.items.length === 0) {
        r.report(cf.path, cf.valueOffset, 'at least one config is required, e.g. "default: [{devices: all, vgpu-devices: {}}]"');
      }
      for (const c of named) {
        const nameProblem = checkConfigName(c.key);
        if (nameProblem) r.report(cf.path, c.keyOffset, nameProblem);
        const entries = readEntryList(r, c);
        configs.push({ name: c.key, entries, line: r.position(c.keyOffset).line });
      }
    }
  }

  const dra = f.get('dra');
  const policy = dra ? readDraPolicy(r, dra) : null;

  if (r.problems.length > 0) throw new ConfigError(filename, r.problems);
  return { version: 'v1', filename, configs, dra: policy };
}

/** Read a config file from disk (`-` reads standard input). Throws ConfigError. */
export function loadConfigFile(path: string): ConfigFile {
  const name = path === '-' ? '<stdin>' : path;
  const text = readTextFile(path, MAX_CONFIG_BYTES, 'config');
  return parseConfig(text, name);
}

/**
 * The UTF-8 text of a user's file (`-` reads standard input), at most `limit`
 * bytes, checked while reading (so /dev/zero or an endless pipe stops at the
 * limit). `what` names the file in messages ("config", "profiles"). Throws ConfigError.
 */
export function readTextFile(path: string, limit: number, what: string, kind = `${what} files`): string {
  const name = path === '-' ? '<stdin>' : path;
  const fail = (message: string): never => {
    throw new ConfigError(name, [{ path: '', line: 0, column: 0, message }]);
  };
  let buf: Buffer;
  try {
    buf = readFileBounded(path === '-' ? 0 : path, limit);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      err instanceof FileTooLargeError
        ? `it holds more than ${formatBytes(limit)}; ${kind} are limited to ${limit} bytes`
        : e.code === 'ENOENT'
          ? 'no such file'
          : e.code === 'EACCES'
            ? 'permission denied'
            : e.code === 'EISDIR'
              ? 'is a directory'
              : String(e.message);
    return fail(`cannot read the ${what} file: ${why}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return fail('the file is not valid UTF-8 text');
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The names of the configs in a file, in file order. */
export function configNames(file: ConfigFile): string[] {
  return file.configs.map((c) => c.name);
}

/**
 * The entries of config `name`. Throws ConfigError naming the available
 * configs and the closest one when it does not exist.
 */
export function selectConfig(file: ConfigFile, name: string): ConfigEntry[] {
  const found = file.configs.find((c) => c.name === name);
  if (found) return found.entries;
  const names = configNames(file);
  let message: string;
  if (names.length === 0) {
    message = `no config named ${JSON.stringify(name)}: the file defines no configs (add a "vgpu-configs" mapping)`;
  } else {
    const hint = didYouMean(name, names, 1);
    const shown = names.length > 20 ? `${names.slice(0, 20).join(', ')}, ... (${names.length} in all)` : names.join(', ');
    message = `no config named ${JSON.stringify(name)}.${hint} Available: ${shown}`;
  }
  throw new ConfigError(file.filename, [{ path: 'vgpu-configs', line: 0, column: 0, message }]);
}
