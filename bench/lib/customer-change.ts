/** The change the hub benchmarks relay and compact: a `customer` update over 50,000 rows. */
import { encodeHlc, type Change } from '../../protocol/index.js';

/** How many distinct `customer` rows the changes cycle through. */
export const CUSTOMER_ROWS = 50_000;

const NAMES = ['Zoë Müller', 'José Núñez', 'Ава Смирнова', '山田 太郎', 'محمد علي', 'Łukasz Żak'];

/** A `customer` update as an agent captures it (text-form values, ~500 bytes), stamped with the send time. */
export function customerChange(origin: string, seq: number, tx: number, txEnd: boolean, sent: number): Change {
  const id = String(1_000_000 + (seq % CUSTOMER_ROWS));
  const name = NAMES[seq % NAMES.length] as string;
  return {
    table: 'public.customer',
    op: 'update',
    pk: { id },
    row: {
      id,
      name,
      email: `customer.${id}@example.com`,
      balance: ((seq * 7919) % 1_000_000).toFixed(2),
      credit_limit: '12345678901234567890.123456789',
      active: 't',
      created_at: '2024-03-01 09:30:00.123456+00',
      avatar: '\\x89504e470d0a1a0a0000000d49484452',
      tags: '{vip,"north east"}',
      prefs: '{"lang": "de", "limits": [1, 2, 3], "newsletter": true}',
      notes: 'Prefers delivery before 10:00 — call first ☎',
      sent: sent.toFixed(3),
    },
    hlc: encodeHlc({ wall: Math.floor(sent), logical: 0 }),
    vv: { [origin]: seq },
    origin,
    seq,
    tx: String(tx),
    ...(txEnd ? { tx_end: true } : {}),
  };
}
