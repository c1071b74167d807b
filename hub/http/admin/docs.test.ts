import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { HubContext } from '../../context.js';
import { CLOSE, UPGRADE_STATUS, type HubErrorCode } from '../../errors.js';
import { createMetrics } from '../../metrics.js';
import type { HubStore } from '../../store/index.js';
import { adminRoutes } from './routes.js';

const doc = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');

describe('docs/api.md', () => {
  it('documents every admin route and method', () => {
    // Building the table runs no handler, so the dependencies are never touched.
    const routes = adminRoutes({ ctx: {} as HubContext, store: {} as HubStore });
    const missing = routes.flatMap((r) => Object.keys(r.methods).map((m) => `${m} ${r.path}`)).filter((s) => !doc.includes(`\`${s}`));
    expect(missing).toEqual([]);
  });

  it('lists every hub_broker_ metric', async () => {
    const names = (await createMetrics('docs').registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('hub_broker_'));
    expect(names.length).toBeGreaterThan(20);
    expect(names.filter((n) => !doc.includes(`\`${n}\``))).toEqual([]);
  });

  it('lists every close code, error-frame code and upgrade refusal', () => {
    const codes: Record<HubErrorCode, true> = {
      invalid_frame: true,
      malformed_frame: true,
      unknown_type: true,
      frame_too_large: true,
      batch_too_large: true,
      forged_origin: true,
      unknown_target: true,
      forbidden_target: true,
      forbidden_table: true,
      clock_ahead: true,
      rate_limited: true,
      snapshot_unavailable: true,
      token_invalid: true,
      internal: true,
    };
    for (const code of Object.keys(codes)) expect(doc).toContain(`\`${code}\``);
    for (const close of Object.values(CLOSE).filter((c) => c !== CLOSE.normal)) expect(doc).toMatch(new RegExp(`\\| (\\d+ / )?${close}( / \\d+)? \\|`));
    for (const reason of Object.keys(UPGRADE_STATUS)) expect(doc).toContain(`\`${reason}\``);
  });
});
