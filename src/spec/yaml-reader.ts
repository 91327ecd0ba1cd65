/**
 * A strict reader over a parsed YAML document: typed access to mappings,
 * lists and scalars that records a positioned problem (key path, line,
 * column) for every unknown key, duplicate key or wrong type instead of
 * stopping at the first one.
 */
import { Composer, isAlias, isMap, isScalar, isSeq, Parser, visit, type CST, type Document, type DocumentOptions, type LineCounter, type Node, type ParseOptions, type SchemaOptions } from 'yaml';
import type { ConfigProblem } from './config.js';
import { closestNames } from './suggest.js';

/** Each alias dereference costs one unit; this bounds the work on hostile files. */
export const MAX_ALIAS_EXPANSIONS = 1000;

/**
 * How deep a document may nest. A config nests about 6 levels (vgpu-configs >
 * name > entry > key > profile > value); the YAML library's composer recurses
 * once per level and overflows the stack a few thousand levels down.
 */
const MAX_YAML_DEPTH = 64;

/** The message for a document nested too deep; the caller positions it. */
export const TOO_DEEP_MESSAGE = `the YAML nests deeper than ${MAX_YAML_DEPTH} levels here; a config nests about 6 (vgpu-configs > name > entry > key > value)`;

/**
 * parseAllDocuments, except that a document nested deeper than MAX_YAML_DEPTH
 * is refused before it is composed: the result is then the offset of the
 * first collection too deep. The parser is iterative; only composing recurses.
 */
export function parseYamlDocuments(text: string, options: ParseOptions & DocumentOptions & SchemaOptions & { lineCounter: LineCounter }): Document.Parsed[] | { tooDeepAt: number } {
  const tokens = [...new Parser(options.lineCounter.addNewLine).parse(text)];
  const tooDeepAt = firstTooDeep(tokens);
  if (tooDeepAt !== null) return { tooDeepAt };
  return Array.from(new Composer(options).compose(tokens));
}

/** The offset of the first collection nested deeper than MAX_YAML_DEPTH, walking the tokens without recursion. */
function firstTooDeep(tokens: CST.Token[]): number | null {
  const stack: { token: CST.Token | null | undefined; depth: number }[] = tokens.map((token) => ({ token, depth: 0 }));
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (!token) continue;
    switch (token.type) {
      case 'document':
        stack.push({ token: token.value, depth });
        break;
      case 'block-map':
      case 'block-seq':
      case 'flow-collection':
        if (depth + 1 > MAX_YAML_DEPTH) return token.offset;
        for (const item of token.items as CST.CollectionItem[]) {
          stack.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
        }
        break;
      default:
        break;
    }
  }
  return null;
}

export interface Field {
  key: string;
  keyNode: Node;
  /** The value node with aliases resolved; null when the key has no value node at all. */
  value: Node | null;
  /** Offset of the key, for "unknown key" and "duplicate key" problems. */
  keyOffset: number;
  /** Offset of the value (the key's when there is no value node). */
  valueOffset: number;
  path: string;
}

/** Append a key to a path: `a.b`, or `a["x y"]` when the key is not a plain word. */
function childPath(path: string, key: string): string {
  if (/^[A-Za-z0-9_-]+$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

function indexPath(path: string, i: number): string {
  return `${path}[${i}]`;
}

function nodeOffset(node: Node | null | undefined, fallback: number): number {
  const r = node?.range;
  return r ? r[0] : fallback;
}

/** Thrown by the reader to stop early (the problem is already recorded). */
export class ReaderAbort extends Error {
  override readonly name = 'ReaderAbort';
}

export class YamlReader {
  readonly problems: ConfigProblem[] = [];
  private aliasBudget = MAX_ALIAS_EXPANSIONS;
  /** Anchor name -> anchored nodes in document order (for alias resolution in O(log n)). */
  private anchors: Map<string, { offset: number; node: Node }[]> | null = null;

  constructor(
    private readonly doc: Document,
    private readonly lc: LineCounter,
  ) {}

  private anchorIndex(): Map<string, { offset: number; node: Node }[]> {
    if (this.anchors) return this.anchors;
    const index = new Map<string, { offset: number; node: Node }[]>();
    visit(this.doc, {
      Node: (_key, node) => {
        if (!isAlias(node) && typeof node.anchor === 'string') {
          const list = index.get(node.anchor) ?? [];
          list.push({ offset: nodeOffset(node, 0), node });
          index.set(node.anchor, list);
        }
      },
    });
    for (const list of index.values()) list.sort((a, b) => a.offset - b.offset);
    this.anchors = index;
    return index;
  }

  /** The last node anchored `name` before `offset` (YAML's rule), or null. */
  private resolveAnchor(name: string, offset: number): Node | null {
    const list = this.anchorIndex().get(name);
    if (!list) return null;
    let lo = 0;
    let hi = list.length - 1;
    let found: Node | null = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.offset < offset) {
        found = list[mid]!.node;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  position(offset: number): { line: number; column: number } {
    const lp = this.lc.linePos(Math.max(0, offset));
    return { line: lp.line, column: lp.col };
  }

  report(path: string, offset: number, message: string): void {
    this.problems.push({ path, ...this.position(offset), message });
  }

  /** Resolve aliases. A dangling alias or a spent budget is reported and aborts the read (ReaderAbort). */
  deref(node: unknown, path: string): Node | null {
    let cur = node;
    let hops = 0;
    while (isAlias(cur)) {
      if (this.aliasBudget-- <= 0 || ++hops > 64) {
        this.report(path, nodeOffset(cur, 0), `too many alias expansions (more than ${MAX_ALIAS_EXPANSIONS}); write the values out`);
        throw new ReaderAbort('alias budget exhausted');
      }
      const target = this.resolveAnchor(cur.source, nodeOffset(cur, 0));
      if (!target) {
        this.report(path, nodeOffset(cur, 0), `alias *${cur.source} refers to no anchor (define &${cur.source} before using it)`);
        throw new ReaderAbort('dangling alias');
      }
      cur = target;
    }
    return (cur ?? null) as Node | null;
  }

  /** "a mapping", "a list", `the string "x"`, `the number 5`, ... for "expected X, got Y". */
  describe(node: Node | null): string {
    if (node === null) return 'nothing';
    if (isMap(node)) return 'a mapping';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || v === undefined) return 'nothing (null)';
      if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
      if (typeof v === 'number' || typeof v === 'bigint') return `the number ${scalarText(node)}`;
      if (typeof v === 'boolean') return `the boolean ${String(v)}`;
      return `a ${typeof v}`;
    }
    return 'an unsupported YAML node';
  }

  wrongType(path: string, node: Node | null, offset: number, expected: string): void {
    this.report(path, nodeOffset(node, offset), `expected ${expected}, got ${this.describe(node)}`);
  }

  /**
   * The fields of a mapping, with duplicate keys and non-scalar keys reported.
   * Keys are the scalar's text (numbers as written, e.g. `557`).
   */
  fields(map: Node, path: string): Field[] {
    if (!isMap(map)) return [];
    const out: Field[] = [];
    const seen = new Map<string, number>();
    for (const pair of map.items) {
      const keyNode = this.deref(pair.key, path);
      const keyOffset = nodeOffset(pair.key as Node | null, nodeOffset(map, 0));
      if (keyNode === null || !isScalar(keyNode) || keyNode.value === null || keyNode.value === undefined) {
        if (keyNode !== null) this.report(path, keyOffset, `keys must be plain names, got ${this.describe(keyNode)} as a key`);
        continue;
      }
      const key = scalarText(keyNode);
      const fieldPath = childPath(path, key);
      const firstAt = seen.get(key);
      if (firstAt !== undefined) {
        this.report(path, keyOffset, `duplicate key ${JSON.stringify(key)} (first defined on line ${this.position(firstAt).line}); keep one`);
        continue;
      }
      seen.set(key, keyOffset);
      const value = pair.value === null || pair.value === undefined ? null : this.deref(pair.value, fieldPath);
      out.push({
        key,
        keyNode,
        value,
        keyOffset,
        valueOffset: nodeOffset(pair.value as Node | null, keyOffset),
        path: fieldPath,
      });
    }
    return out;
  }

  /** Report keys not in `allowed`, with a closest-name hint. Returns the known fields by key. */
  known(fields: Field[], allowed: readonly string[], path: string): Map<string, Field> {
    const out = new Map<string, Field>();
    for (const f of fields) {
      if (allowed.includes(f.key)) {
        out.set(f.key, f);
      } else {
        const close = closestNames(f.key, allowed, 1);
        const hint = close.length > 0 ? ` did you mean ${JSON.stringify(close[0])}?` : '';
        this.report(path, f.keyOffset, `unknown key ${JSON.stringify(f.key)};${hint} allowed keys: ${allowed.join(', ')}`);
      }
    }
    return out;
  }

  /** List items (aliases resolved), or null after reporting when `node` is not a list. */
  items(node: Node, path: string): { node: Node | null; offset: number; path: string }[] {
    if (!isSeq(node)) return [];
    return node.items.map((item, i) => ({
      node: this.deref(item, indexPath(path, i)),
      offset: nodeOffset(item as Node | null, nodeOffset(node, 0)),
      path: indexPath(path, i),
    }));
  }
}

/** The text of a scalar: strings as they are, numbers/booleans as written in a plain scalar. */
export function scalarText(node: Node): string {
  if (!isScalar(node)) return '';
  const v = node.value;
  if (typeof v === 'string') return v;
  if (node.type === 'PLAIN' && typeof node.source === 'string') return node.source;
  return String(v);
}

/** A non-negative integer written as plain decimal digits (no 1.0, 0x1, 1e3, "1"). */
export function plainInteger(node: Node | null): number | null {
  if (node === null || !isScalar(node) || node.type !== 'PLAIN') return null;
  if (typeof node.value !== 'number' || !Number.isSafeInteger(node.value)) return null;
  const src = typeof node.source === 'string' ? node.source : String(node.value);
  return /^(0|[1-9][0-9]*)$/.test(src) ? node.value : null;
}
