// Lint rules: the recommended sets of ESLint and typescript-eslint, plus the few
// rules that catch real defects in this code base (floating promises in servers,
// focused or skipped tests).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ALL_ROOMS = ['model', 'io', 'spec', 'sysfs', 'inventory', 'plan', 'apply', 'simulator', 'machine', 'serve', 'cli'];

/** One no-restricted-imports block per room: the rooms it must not import, and Node modules it must not use. */
function rooms(table) {
  return Object.entries(table).map(([files, { rooms: allowed, node = [], why }]) => {
    const self = files.split('/')[1];
    const banned = ALL_ROOMS.filter((r) => r !== self && !allowed.includes(r));
    return {
      files: [files],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: banned.map((r) => ({ regex: `^(\\.\\./)+${r}/`, message: `${self}/ must not import ${r}/: ${why} (DEVELOPERS.md, "Rules of the house").` })),
            paths: node.map((m) => ({ name: `node:${m}`, message: `${self}/ must not use node:${m}: ${why}.` })),
          },
        ],
      },
    };
  });
}

/** Size rules turned off per file, each with its reason beside it. */
function exceptions(table) {
  return Object.entries(table).map(([file, rules]) => ({ files: [file], rules: Object.fromEntries(rules.map((r) => [r, 'off'])) }));
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test/tools/**', 'test/peers/**', 'coverage/**', '**/*.tmp.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's test()/describe() return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'it', property: 'skip' },
        { object: 'it', property: 'only' },
        { object: 'test', property: 'skip' },
        { object: 'test', property: 'only' },
        { object: 'describe', property: 'skip' },
        { object: 'describe', property: 'only' },
      ],
    },
  },
  // The rooms (DEVELOPERS.md): each may import only the rooms below it. A
  // deliberate violation fails `npm test`.
  ...rooms({
    'src/model/**': { rooms: [], why: 'the vocabulary every room shares imports nothing' },
    'src/io/**': { rooms: [], why: 'reading and writing plain files safely is below every room' },
    'src/spec/**': { rooms: ['model', 'io'], why: 'the file format knows only the vocabulary (and reads files through io/)' },
    'src/sysfs/**': { rooms: ['model', 'io'], why: 'the port knows only names' },
    'src/inventory/**': { rooms: ['model', 'io', 'sysfs'], why: 'the inventory reads through the port' },
    'src/plan/**': { rooms: ['model', 'spec', 'inventory'], node: ['fs', 'child_process', 'net', 'http', 'https'], why: 'the planner is pure: no I/O, no port' },
    'src/apply/**': { rooms: ['model', 'sysfs', 'inventory', 'plan'], why: 'the applier acts through the port' },
    'src/simulator/**': { rooms: ['model', 'io', 'sysfs', 'inventory'], why: 'the simulator stands behind the port' },
    'src/machine/**': { rooms: ['model', 'io', 'sysfs', 'inventory', 'spec', 'plan', 'apply', 'simulator'], why: 'the machine wires the rooms below' },
    'src/cli/**': { rooms: ['model', 'io', 'sysfs', 'inventory', 'spec', 'plan', 'apply', 'machine', 'serve'], why: 'the command line opens machines through src/machine, the one door to the simulator' },
    'src/serve/**': { rooms: ['model', 'io', 'sysfs', 'inventory', 'spec', 'plan', 'apply', 'machine', 'serve'], why: 'servers never reach into the command line or the simulator' },
  }),
  // Sizes one can read at once (issue 13): no source file over 450 lines of code, no function
  // over 60. The exceptions below are listed with their reason; shrinking the list is welcome.
  {
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 450, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }],
    },
  },
  // Exceptions, each with its reason, go here: ...exceptions({ 'src/x.ts': ['max-lines'] }).
  ...exceptions({}),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
