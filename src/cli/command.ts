import type { ParseArgsConfig } from 'node:util';

/** One `vmgpu` subcommand. */
export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(values: Record<string, unknown>, positionals: string[]): Promise<number>;
}

export const write = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
};
