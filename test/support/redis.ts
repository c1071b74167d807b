import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll } from 'vitest';

export const testRedisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A unique key and channel prefix for one test file. */
export function newRedisPrefix(label = 'r'): string {
  return `hbt:${label}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const r = new Redis(testRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

/** A prefix for this test file whose keys are removed after its tests. */
export function useRedisPrefix(label = 'r'): string {
  const prefix = newRedisPrefix(label);
  afterAll(() => deleteRedisPrefix(prefix));
  return prefix;
}

/** Where the hub's location registry under `prefix` says each branch of `tenant` is: branch → instance. */
export async function locatedBranches(options: RedisOptions, prefix: string, tenant: string): Promise<Record<string, string>> {
  const c = new Redis({ ...options, lazyConnect: true });
  await c.connect();
  try {
    const all = await c.hgetall(`${prefix}loc:${tenant}`);
    return Object.fromEntries(Object.entries(all).map(([b, v]) => [b, v.split('|')[0] as string]));
  } finally {
    c.disconnect();
  }
}
