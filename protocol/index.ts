export * from './errors.js';
export * from './messages.js';
export * from './validate.js';
export * from './codec.js';
export * from './hlc.js';
export * as vv from './version-vector.js';
export type { Ordering } from './version-vector.js';
export * from './conflict.js';
