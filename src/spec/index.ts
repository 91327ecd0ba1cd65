/** The config file: parse, select, match, write, import. See docs/config.md. */
export * from './config.js';
export * from './grammar.js';
export * from './load.js';
export * from './match.js';
export * from './serialize.js';
export * from './suggest.js';
export * from './cozystack.js';
