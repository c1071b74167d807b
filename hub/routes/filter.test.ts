import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fcParams } from '../../protocol/testing/fc.js';
import {
  checkFilter,
  equalityIndex,
  evaluate,
  filterAttributes,
  filterColumns,
  FilterError,
  formatFilter,
  parseFilter,
  type ColumnKind,
  type CompareOp,
  type Filter,
  type Operand,
  type Predicate,
} from './filter.js';

type Row = Record<string, unknown>;
type Attributes = Record<string, string>;

const selects = (text: string, row: Row, attributes: Attributes = {}): boolean => evaluate(parseFilter(text), row, attributes);

/** The FilterError that parsing `text` throws; fails the test when it parses or throws something else. */
function parseError(text: string): { message: string; position: number } {
  try {
    parseFilter(text);
  } catch (err) {
    if (err instanceof FilterError) return { message: err.message, position: err.position };
    throw err;
  }
  throw new Error(`parsed: ${text}`);
}

const canonical = (text: string): string => formatFilter(parseFilter(text));

describe('parseFilter', () => {
  it('builds predicates with folded columns, decoded strings and attributes as written', () => {
    expect(parseFilter(`Store_ID = branch.Store-Id and "Full Name" != 'O''Brien'`)).toEqual({
      type: 'and',
      operands: [
        { type: 'compare', column: 'store_id', op: '=', operand: { type: 'attribute', name: 'Store-Id' } },
        { type: 'compare', column: 'Full Name', op: '<>', operand: { type: 'string', value: "O'Brien" } },
      ],
    });
    expect(parseFilter('qty >= -1.50e+3')).toEqual({ type: 'compare', column: 'qty', op: '>=', operand: { type: 'number', text: '-1.50e+3' } });
    expect(parseFilter('x not in (true, FALSE, 2)')).toEqual({
      type: 'in',
      column: 'x',
      negated: true,
      items: [
        { type: 'boolean', value: true },
        { type: 'boolean', value: false },
        { type: 'number', text: '2' },
      ],
    });
    expect(parseFilter('x is not null')).toEqual({ type: 'isNull', column: 'x', negated: true });
    expect(parseFilter('"a""b" Is Null')).toEqual({ type: 'isNull', column: 'a"b', negated: false });
  });

  it('keeps "branch" usable as a column name, and BRANCH. case-insensitive as the prefix', () => {
    expect(parseFilter('branch = BRANCH.branch')).toEqual({
      type: 'compare',
      column: 'branch',
      op: '=',
      operand: { type: 'attribute', name: 'branch' },
    });
  });

  it('binds NOT tighter than AND, and AND tighter than OR', () => {
    const a = { type: 'compare', column: 'a', op: '=', operand: { type: 'number', text: '1' } };
    const b = { type: 'compare', column: 'b', op: '=', operand: { type: 'number', text: '2' } };
    const c = { type: 'compare', column: 'c', op: '=', operand: { type: 'number', text: '3' } };
    expect(parseFilter('a = 1 OR b = 2 AND c = 3')).toEqual({ type: 'or', operands: [a, { type: 'and', operands: [b, c] }] });
    expect(parseFilter('a = 1 AND b = 2 OR c = 3')).toEqual({ type: 'or', operands: [{ type: 'and', operands: [a, b] }, c] });
    expect(parseFilter('NOT a = 1 AND b = 2')).toEqual({ type: 'and', operands: [{ type: 'not', operand: a }, b] });
    expect(parseFilter('NOT a = 1 OR b = 2')).toEqual({ type: 'or', operands: [{ type: 'not', operand: a }, b] });
    expect(parseFilter('NOT (a = 1 OR b = 2)')).toEqual({ type: 'not', operand: { type: 'or', operands: [a, b] } });
    expect(parseFilter('(a = 1 OR b = 2) AND c = 3')).toEqual({ type: 'and', operands: [{ type: 'or', operands: [a, b] }, c] });
    expect(parseFilter('a = 1 AND b = 2 AND c = 3')).toEqual({ type: 'and', operands: [a, b, c] });
  });

  it('returns a frozen tree', () => {
    const f = parseFilter('a = 1 AND b IN (1, 2)');
    expect(Object.isFrozen(f)).toBe(true);
    expect(f.type === 'and' && Object.isFrozen(f.operands) && Object.isFrozen(f.operands[1])).toBe(true);
  });

  const VALUE = "a value ('text', a number, TRUE, FALSE or branch.<attribute>)";
  const errors: [string, string, number][] = [
    ['store_id 17', 'filter: expected a comparison operator after "store_id" at 9, found "17"', 9],
    ['', 'filter: expected a column, NOT or "(" at 0, found end of filter', 0],
    ['   ', 'filter: expected a column, NOT or "(" at 3, found end of filter', 3],
    ['17 = store_id', 'filter: expected a column, NOT or "(" at 0, found "17" (the column goes on the left of a comparison)', 0],
    ['TRUE = a', 'filter: expected a column, NOT or "(" at 0, found "TRUE" (the column goes on the left of a comparison)', 0],
    ['branch.x = a', 'filter: expected a column, NOT or "(" at 0, found "branch.x" (branch attributes go on the right of a comparison)', 0],
    ['and = 1', 'filter: expected a column, NOT or "(" at 0, found "and" (AND is a keyword; quote it as "and" to name a column)', 0],
    ['a = 1 AND', 'filter: expected a column, NOT or "(" at 9, found end of filter', 9],
    ['a = b', `filter: expected ${VALUE} after "=" at 4, found "b" (a column can only be on the left)`, 4],
    ['a = NULL', `filter: expected ${VALUE} after "=" at 4, found "NULL" (test for NULL with IS NULL)`, 4],
    ['a = 17abc', `filter: expected ${VALUE} after "=" at 4, found "17abc"`, 4],
    ['a <= 1.2.3', `filter: expected ${VALUE} after "<=" at 5, found "1.2.3"`, 5],
    ['a = -x', `filter: expected ${VALUE} after "=" at 4, found "-"`, 4],
    ['a @ 1', 'filter: expected a comparison operator after "a" at 2, found "@"', 2],
    ['"My Col" 1', 'filter: expected a comparison operator after "My Col" at 9, found "1"', 9],
    ['a IS 1', 'filter: expected NULL or NOT NULL after IS at 5, found "1"', 5],
    ['a IS NOT TRUE', 'filter: expected NULL after IS NOT at 9, found "TRUE"', 9],
    ['a NOT = 1', 'filter: expected IN after "a NOT" at 6, found "="', 6],
    ['a IN 1', 'filter: expected "(" after IN at 5, found "1"', 5],
    ['a not in 1', 'filter: expected "(" after IN at 9, found "1"', 9],
    ['a IN ()', `filter: expected ${VALUE} after "(" at 6, found ")"`, 6],
    ['a IN (1 2)', 'filter: expected "," or ")" in the IN list at 8, found "2"', 8],
    ['a IN (1,)', `filter: expected ${VALUE} after "," at 8, found ")"`, 8],
    ['(a = 1', 'filter: expected AND, OR or ")" at 6, found end of filter', 6],
    ['(a = 1 b = 2)', 'filter: expected AND, OR or ")" at 7, found "b"', 7],
    ['a = 1)', 'filter: expected AND, OR or end of filter at 5, found ")" (no "(" to close)', 5],
    ['a = 1 b = 2', 'filter: expected AND, OR or end of filter at 6, found "b"', 6],
    ["a = 'x", "filter: expected a closing ' for the string at 4, found end of filter", 4],
    ["a = 'it''s", "filter: expected a closing ' for the string at 4, found end of filter", 4],
    ['"a = 1', 'filter: expected a closing " for the quoted identifier at 0, found end of filter', 0],
    ['"" = 1', 'filter: expected a column name inside "" at 0, found an empty one', 0],
    ['a = branch.', 'filter: expected an attribute name after "branch." at 11, found end of filter', 11],
    ['a = branch.-x', 'filter: expected an attribute name after "branch." at 11, found "-"', 11],
  ];
  it.each(errors)('refuses %j: %s', (text, message, position) => {
    expect(parseError(text)).toEqual({ message, position });
  });

  it('is a FilterError, an Error with a name', () => {
    let caught: unknown;
    try {
      parseFilter('x');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FilterError);
    expect(caught).toBeInstanceOf(Error);
    expect((caught as FilterError).name).toBe('FilterError');
  });
});

describe('limits', () => {
  const chain = (n: number): string => Array.from({ length: n }, (_, i) => `c${i} = ${i}`).join(' AND ');

  it('takes 4096 characters and refuses one more', () => {
    const text = `a = '${'x'.repeat(4096 - 6)}'`;
    expect(text).toHaveLength(4096);
    expect(() => parseFilter(text)).not.toThrow();
    expect(parseError(`${text} `)).toEqual({ message: 'filter: expected at most 4096 characters, found 4097', position: 4096 });
  });

  it('takes 64 predicates and refuses a 65th where it starts', () => {
    expect(() => parseFilter(chain(64))).not.toThrow();
    const text = chain(65);
    const at = text.indexOf('c64 ');
    expect(parseError(text)).toEqual({ message: `filter: expected at most 64 predicates at ${at}, found "c64" (too many)`, position: at });
  });

  it('takes 16 levels of parentheses and NOTs, and refuses a 17th', () => {
    const parens = (n: number) => `${'('.repeat(n)}a = 1${')'.repeat(n)}`;
    const nots = (n: number) => `${'NOT '.repeat(n)}a = 1`;
    expect(() => parseFilter(parens(16))).not.toThrow();
    expect(() => parseFilter(nots(16))).not.toThrow();
    expect(() => parseFilter(`${'NOT ('.repeat(8)}a = 1${')'.repeat(8)}`)).not.toThrow();
    expect(parseError(parens(17))).toEqual({
      message: 'filter: expected at most 16 levels of NOT and parentheses at 16, found "(" (nested too deep)',
      position: 16,
    });
    expect(parseError(nots(17)).position).toBe(64);
    // Depth is nesting, not a count: many shallow groups side by side are fine.
    expect(() => parseFilter(Array.from({ length: 30 }, (_, i) => `((c${i} = 1))`).join(' OR '))).not.toThrow();
  });

  it('takes 256 items in an IN list and refuses a 257th', () => {
    const list = (n: number) => `a IN (${Array.from({ length: n }, (_, i) => i).join(',')})`;
    expect(() => parseFilter(list(256))).not.toThrow();
    const text = list(257);
    const at = text.lastIndexOf(',') + 1;
    expect(parseError(text)).toEqual({ message: `filter: expected at most 256 items in an IN list at ${at}, found "256" (too many)`, position: at });
  });
});

describe('formatFilter', () => {
  const cases: [string, string][] = [
    ['store_id=branch.store_id and active=true', 'store_id = branch.store_id AND active = TRUE'],
    ['not a=1 and (b=2 or c=3)', 'NOT a = 1 AND (b = 2 OR c = 3)'],
    ['a = 1 or b = 2 and c = 3', 'a = 1 OR b = 2 AND c = 3'],
    ['(a = 1 and b = 2) or c = 3', 'a = 1 AND b = 2 OR c = 3'],
    ['((a = 1))', 'a = 1'],
    ['not (a = 1)', 'NOT a = 1'],
    ['not not a is null', 'NOT NOT a IS NULL'],
    ['not (a = 1 and b = 2)', 'NOT (a = 1 AND b = 2)'],
    // Grouping that was written stays, so the tree survives a round trip.
    ['(a = 1 AND b = 2) AND c = 3', '(a = 1 AND b = 2) AND c = 3'],
    ['a = 1 OR (b = 2 OR c = 3)', 'a = 1 OR (b = 2 OR c = 3)'],
    ['a != 1', 'a <> 1'],
    [`"Full Name" = 'it''s'`, `"Full Name" = 'it''s'`],
    ['"in" = 1 and "x""y" = 2', '"in" = 1 AND "x""y" = 2'],
    ['"lower" = 1', 'lower = 1'],
    ['x not in (1,branch.b,  \'t\')', "x NOT IN (1, branch.b, 't')"],
    ['NOT x in (1)', 'NOT x IN (1)'],
    ['x is not null', 'x IS NOT NULL'],
    ['q > 017.50E-2', 'q > 017.50E-2'],
  ];
  it.each(cases)('writes %j as %j', (text, expected) => {
    expect(canonical(text)).toBe(expected);
    expect(parseFilter(expected)).toEqual(parseFilter(text));
  });

  it('refuses trees that no text could stand for', () => {
    const attr = (name: string): Filter => ({ type: 'compare', column: 'a', op: '=', operand: { type: 'attribute', name } });
    expect(() => formatFilter(attr('two words'))).toThrow(/cannot be written/);
    expect(() => formatFilter({ type: 'isNull', column: '', negated: false })).toThrow(/empty/);
  });
});

describe('evaluate', () => {
  it('selects only when the filter is TRUE: a missing or null column is unknown', () => {
    expect(selects('a = 1', { a: '1' })).toBe(true);
    expect(selects('a = 1', {})).toBe(false);
    expect(selects('a = 1', { a: null })).toBe(false);
    expect(selects('NOT a = 1', {})).toBe(false);
    expect(selects('NOT a = 1', { a: null })).toBe(false);
    expect(selects('NOT a = 1', { a: '2' })).toBe(true);
    expect(selects('a <> 1', {})).toBe(false);
  });

  it('tests NULL with IS [NOT] NULL, missing counting as null', () => {
    expect(selects('a IS NULL', {})).toBe(true);
    expect(selects('a IS NULL', { a: null })).toBe(true);
    expect(selects('a IS NULL', { a: '' })).toBe(false);
    expect(selects('a IS NOT NULL', { a: '' })).toBe(true);
    expect(selects('a IS NOT NULL', { a: null })).toBe(false);
    expect(selects('NOT a IS NULL', {})).toBe(false);
  });

  it('combines unknowns as SQL does', () => {
    // OR: TRUE wins over unknown; AND: FALSE wins over unknown.
    expect(selects('a = 1 OR b = 1', { b: '1' })).toBe(true);
    expect(selects('a = 1 OR b = 1', { b: '0' })).toBe(false);
    expect(selects('NOT (a = 1 OR b = 1)', { b: '0' })).toBe(false);
    expect(selects('NOT (a = 1 OR b = 1)', { a: '0', b: '0' })).toBe(true);
    expect(selects('a = 1 AND b = 1', { b: '1' })).toBe(false);
    expect(selects('NOT (a = 1 AND b = 1)', { b: '0' })).toBe(true);
    expect(selects('NOT (a = 1 AND b = 1)', { b: '1' })).toBe(false);
    expect(selects('NOT NOT a = 1', {})).toBe(false);
    expect(selects('a = 1 OR a IS NULL', {})).toBe(true);
  });

  it('compares numbers by value, from text or JSON numbers', () => {
    expect(selects('n = 17', { n: '17' })).toBe(true);
    expect(selects('n = 17', { n: '17.0' })).toBe(true);
    expect(selects('n = 17', { n: 17 })).toBe(true);
    expect(selects('n = 17.5', { n: '17.50' })).toBe(true);
    expect(selects("n = '17.0'", { n: 17 })).toBe(true);
    expect(selects('n = 1000', { n: '1e3' })).toBe(true);
    expect(selects('n = 0', { n: '-0.000' })).toBe(true);
    expect(selects('n = 007', { n: '7' })).toBe(true);
    expect(selects('n < 10', { n: '9' })).toBe(true); // as text "9" > "10"
    expect(selects('n > -10', { n: '-9' })).toBe(true);
    expect(selects('n < 1e-2', { n: '0.001' })).toBe(true);
    expect(selects('n > 12.34', { n: 12.5 })).toBe(true);
  });

  it('compares numbers exactly, beyond what a double holds', () => {
    // Both are the same double; as bigint ids they differ.
    expect(selects('id = 12345678901234567890', { id: '12345678901234567891' })).toBe(false);
    expect(selects('id < 12345678901234567891', { id: '12345678901234567890' })).toBe(true);
    expect(selects('n > 0.1', { n: '0.10000000000000000001' })).toBe(true);
    expect(selects('n = 1e400', { n: '10e399' })).toBe(true);
  });

  it('compares text by UTF-16 code units, and numbers with text as text', () => {
    expect(selects("s < 'abd'", { s: 'abc' })).toBe(true);
    expect(selects("s = 'abc'", { s: 'abc' })).toBe(true);
    expect(selects("s = 'abc'", { s: 'ABC' })).toBe(false);
    expect(selects("s < 'a'", { s: 'Z' })).toBe(true);
    expect(selects("s > 'z'", { s: 'é' })).toBe(true);
    expect(selects('s = 17', { s: 'abc' })).toBe(false);
    expect(selects('s <> 17', { s: 'abc' })).toBe(true);
    expect(selects("s = ' 17'", { s: '17' })).toBe(false); // no trimming: " 17" is not a number
    expect(selects('s = 17', { s: ' 17' })).toBe(false);
    expect(selects("s = 'NaN'", { s: 'NaN' })).toBe(true);
  });

  it('compares JSON objects and arrays by their JSON text', () => {
    expect(selects(`doc = '{"a":1}'`, { doc: { a: 1 } })).toBe(true);
    expect(selects(`tags = '["x"]'`, { tags: ['x'] })).toBe(true);
  });

  it('reads booleans from t/f text, true/false text or JSON booleans', () => {
    expect(selects('b = TRUE', { b: 't' })).toBe(true);
    expect(selects('b = FALSE', { b: 'f' })).toBe(true);
    expect(selects('b = TRUE', { b: 'f' })).toBe(false);
    expect(selects('b <> FALSE', { b: 't' })).toBe(true);
    expect(selects('b = TRUE', { b: 'true' })).toBe(true);
    expect(selects('b = TRUE', { b: 'TRUE' })).toBe(true);
    expect(selects('b = FALSE', { b: 'False' })).toBe(true);
    expect(selects('b = TRUE', { b: true })).toBe(true);
    expect(selects("b = 't'", { b: true })).toBe(true);
    expect(selects('b = FALSE', { b: false })).toBe(true);
    expect(selects('b > FALSE', { b: 't' })).toBe(true);
    expect(selects('b = TRUE', { b: 'yes' })).toBe(false);
    expect(selects('b = TRUE', { b: 1 })).toBe(false);
    // Without a boolean on either side, "t" is just text.
    expect(selects("b = 'true'", { b: 't' })).toBe(false);
  });

  it('evaluates IN and NOT IN with SQL nulls', () => {
    const attrs = { one: '1' };
    expect(selects('x IN (1, 2)', { x: '2' })).toBe(true);
    expect(selects('x IN (1, 2)', { x: '3' })).toBe(false);
    expect(selects('x IN (1, 2)', {})).toBe(false);
    expect(selects('x IN (branch.one)', { x: '1.0' }, attrs)).toBe(true);
    // branch.none is NULL: x IN (1, NULL) is TRUE on a match, else unknown.
    expect(selects('x IN (1, branch.none)', { x: '1' })).toBe(true);
    expect(selects('x IN (1, branch.none)', { x: '2' })).toBe(false);
    expect(selects('NOT x IN (1, branch.none)', { x: '2' })).toBe(false);
    // x NOT IN (1, NULL) is never TRUE.
    expect(selects('x NOT IN (1, branch.none)', { x: '2' })).toBe(false);
    expect(selects('x NOT IN (1, branch.none)', { x: '1' })).toBe(false);
    expect(selects('x NOT IN (1, 2)', { x: '3' })).toBe(true);
    expect(selects('x NOT IN (1, 2)', { x: '1' })).toBe(false);
    expect(selects('x NOT IN (1, 2)', {})).toBe(false);
    expect(selects('x NOT IN (1, 2) OR x IS NULL', {})).toBe(true);
  });

  it('resolves branch.<attr> against the receiving branch; a missing attribute selects nothing', () => {
    const f = parseFilter('store_id = branch.store_id');
    expect(evaluate(f, { store_id: '17' }, { store_id: '17' })).toBe(true);
    expect(evaluate(f, { store_id: 17 }, { store_id: '17' })).toBe(true);
    expect(evaluate(f, { store_id: '17' }, { store_id: '18' })).toBe(false);
    expect(evaluate(f, { store_id: '17' }, {})).toBe(false);
    expect(evaluate(parseFilter('store_id <> branch.store_id'), { store_id: '17' }, {})).toBe(false);
    expect(evaluate(parseFilter('NOT store_id = branch.store_id'), { store_id: '17' }, {})).toBe(false);
    // Attribute names are case-sensitive.
    expect(evaluate(parseFilter('r = branch.Region'), { r: 'north' }, { region: 'north' })).toBe(false);
    expect(evaluate(parseFilter('r = branch.Region'), { r: 'north' }, { Region: 'north' })).toBe(true);
  });

  it('looks at own properties only, never at Object.prototype', () => {
    expect(selects('constructor IS NULL', {})).toBe(true);
    expect(selects('tostring = branch.toString', { tostring: 'x' })).toBe(false);
    expect(selects('"__proto__" IS NULL', {})).toBe(true);
  });
});

describe('equalityIndex', () => {
  it('finds column = branch.attr as the filter or as a top-level conjunct', () => {
    expect(equalityIndex(parseFilter('store_id = branch.store_id AND active = TRUE'))).toEqual({ column: 'store_id', attribute: 'store_id' });
    expect(equalityIndex(parseFilter('active = TRUE AND region = branch.Region'))).toEqual({ column: 'region', attribute: 'Region' });
    expect(equalityIndex(parseFilter('a = 1 AND (b = 2 AND c = branch.x)'))).toEqual({ column: 'c', attribute: 'x' });
    expect(equalityIndex(parseFilter('a = branch.x'))).toEqual({ column: 'a', attribute: 'x' });
  });

  it('is null when no conjunct pins the receiver', () => {
    expect(equalityIndex(parseFilter('a = 1 OR b = branch.x'))).toBeNull();
    expect(equalityIndex(parseFilter('a = 1 AND (b = 2 OR c = branch.x)'))).toBeNull();
    expect(equalityIndex(parseFilter('NOT a = branch.x'))).toBeNull();
    expect(equalityIndex(parseFilter('a <> branch.x'))).toBeNull();
    expect(equalityIndex(parseFilter('a >= branch.x'))).toBeNull();
    expect(equalityIndex(parseFilter("a = 'x'"))).toBeNull();
    expect(equalityIndex(parseFilter('a IN (branch.x)'))).toBeNull();
  });
});

describe('filterColumns and filterAttributes', () => {
  it('lists every column and attribute once', () => {
    const f = parseFilter('a = branch.x OR NOT (B IN (1, branch.y) AND "C" IS NULL AND a = branch.x)');
    expect([...filterColumns(f)].sort()).toEqual(['C', 'a', 'b']);
    expect([...filterAttributes(f)].sort()).toEqual(['x', 'y']);
    expect(filterAttributes(parseFilter('a = 1')).size).toBe(0);
  });
});

describe('checkFilter', () => {
  const columns = new Map<string, ColumnKind>([
    ['store_id', 'number'],
    ['name', 'text'],
    ['active', 'boolean'],
    ['payload', 'other'],
    ['status', 'text'],
    ['stock', 'number'],
    ['updated_at', 'text'],
  ]);
  const schema = { columns, attributes: new Set(['store_id', 'region']) };
  const check = (text: string) => checkFilter(parseFilter(text), schema);

  it('finds nothing wrong with a filter that fits', () => {
    expect(check("store_id = branch.store_id AND active = TRUE AND name <> 'x' AND store_id IN (1, '2') AND payload = 3")).toEqual([]);
    expect(check("stock > '17.5' AND name = branch.region AND payload = TRUE AND active <> FALSE AND name IS NULL")).toEqual([]);
  });

  it('names an unknown column and the closest known ones', () => {
    expect(check('stor_id = 1')).toEqual(['filter: no column "stor_id"; the table has store_id, stock, status, payload, active, … (2 more)']);
    expect(checkFilter(parseFilter('x = 1'), { columns: new Map([['a', 'text']]), attributes: new Set() })).toEqual([
      'filter: no column "x"; the table has a',
    ]);
  });

  it('leaves columns unchecked when the table is not known', () => {
    expect(checkFilter(parseFilter('anything = TRUE AND n < 1'), { attributes: new Set() })).toEqual([]);
  });

  it('names an attribute no branch carries', () => {
    expect(check('store_id = branch.store')).toEqual(['filter: no branch of this tenant has attribute "store"']);
    expect(check('store_id IN (1, branch.Region)')).toEqual(['filter: no branch of this tenant has attribute "Region"']);
    expect(checkFilter(parseFilter('x = branch.a'), { attributes: new Set() })).toEqual(['filter: no branch of this tenant has attribute "a"']);
  });

  it('finds literals that do not fit the column', () => {
    expect(check('name = 17')).toEqual(['filter: column "name" is text but is compared with 17']);
    expect(check('active = 1')).toEqual(['filter: column "active" is boolean but is compared with 1']);
    expect(check('store_id = TRUE')).toEqual(['filter: column "store_id" is number but is compared with TRUE']);
    expect(check('name = FALSE')).toEqual(['filter: column "name" is text but is compared with FALSE']);
    expect(check("store_id = 'abc'")).toEqual(["filter: column \"store_id\" is number but is compared with 'abc', which is not a number"]);
    expect(check("store_id IN (1, 'x', 2)")).toEqual(["filter: column \"store_id\" is number but is compared with 'x', which is not a number"]);
    expect(check('active < TRUE')).toEqual(['filter: column "active" is boolean and cannot be compared with <']);
    expect(check('active >= branch.region')).toEqual(['filter: column "active" is boolean and cannot be compared with >=']);
  });

  it('reports each problem once, in the order of the text', () => {
    expect(check('name = 1 OR nope IS NULL OR name = 1 OR x = branch.y')).toEqual([
      'filter: column "name" is text but is compared with 1',
      'filter: no column "nope"; the table has name, stock, active, payload, status, … (2 more)',
      'filter: no column "x"; the table has name, stock, active, status, payload, … (2 more)',
      'filter: no branch of this tenant has attribute "y"',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const COLUMNS = ['a', 'b', 'store_id', 'in', 'branch', 'Mixed Case', 'quote"d', 'é'];
const ATTRIBUTES = ['store_id', 'Region', 'store-id', '_x'];
const OPS: CompareOp[] = ['=', '<>', '<', '<=', '>', '>='];

const digits = fc.string({ unit: fc.constantFrom('0', '1', '2', '5', '9'), minLength: 1, maxLength: 4 });
const numberText = fc
  .tuple(fc.boolean(), digits, fc.option(digits, { nil: undefined }), fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits), { nil: undefined }))
  .map(([neg, whole, frac, exp]) => `${neg ? '-' : ''}${whole}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : exp.join('')}`);

/** Values that make comparisons interesting: numbers in several spellings, booleans, quotes. */
const textValue = fc.oneof(numberText, fc.constantFrom('t', 'f', 'true', 'abc', '', "it's", '17'), fc.string({ maxLength: 4 }));

const operandArb: fc.Arbitrary<Operand> = fc.oneof(
  textValue.map((value): Operand => ({ type: 'string', value })),
  numberText.map((text): Operand => ({ type: 'number', text })),
  fc.boolean().map((value): Operand => ({ type: 'boolean', value })),
  fc.constantFrom(...ATTRIBUTES).map((name): Operand => ({ type: 'attribute', name })),
);

const columnArb = fc.constantFrom(...COLUMNS);

const predicateArb: fc.Arbitrary<Predicate> = fc.oneof(
  fc.record({ type: fc.constant('compare' as const), column: columnArb, op: fc.constantFrom(...OPS), operand: operandArb }),
  fc
    .record({ column: columnArb, negated: fc.boolean(), items: fc.array(operandArb, { minLength: 1, maxLength: 4 }) })
    .map(({ column, negated, items }): Predicate => ({ type: 'in', column, negated, items: items as [Operand, ...Operand[]] })),
  fc.record({ type: fc.constant('isNull' as const), column: columnArb, negated: fc.boolean() }),
);

/** Trees of `depth` levels above the predicates; at depth 4, at most 2·3·3·3 = 54 predicates, within the parser's limits. */
function filterArb(depth: number): fc.Arbitrary<Filter> {
  if (depth === 0) return predicateArb;
  const sub = filterArb(depth - 1);
  return fc.oneof(
    { depthSize: 'small' },
    predicateArb,
    sub.map((operand): Filter => ({ type: 'not', operand })),
    fc
      .tuple(fc.constantFrom('and' as const, 'or' as const), fc.array(sub, { minLength: 2, maxLength: depth > 3 ? 2 : 3 }))
      .map(([type, operands]): Filter => ({ type, operands: operands as [Filter, Filter, ...Filter[]] })),
  );
}

const rowValue = fc.oneof(textValue, fc.constant(null), fc.integer({ min: -20, max: 20 }), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }));
const rowArb = fc.dictionary(columnArb, rowValue, { maxKeys: COLUMNS.length });
const attributesArb = fc.dictionary(fc.constantFrom(...ATTRIBUTES), textValue, { maxKeys: ATTRIBUTES.length });

describe('properties', () => {
  it('round-trips random trees through formatFilter and parseFilter', () => {
    fc.assert(
      fc.property(filterArb(4), (f) => {
        const text = formatFilter(f);
        expect(parseFilter(text)).toEqual(f);
        expect(formatFilter(parseFilter(text))).toBe(text);
      }),
      fcParams(),
    );
  });

  it('evaluates the reparsed filter as the original on random rows', () => {
    fc.assert(
      fc.property(filterArb(4), rowArb, attributesArb, (f, row, attributes) => {
        expect(evaluate(parseFilter(formatFilter(f)), row, attributes)).toBe(evaluate(f, row, attributes));
      }),
      fcParams(),
    );
  });

  it('never selects a row by both a filter and its negation, and keeps De Morgan', () => {
    fc.assert(
      fc.property(filterArb(3), filterArb(3), rowArb, attributesArb, (f, g, row, attributes) => {
        const not = (x: Filter): Filter => ({ type: 'not', operand: x });
        expect(evaluate(f, row, attributes) && evaluate(not(f), row, attributes)).toBe(false);
        const lhs = evaluate(not({ type: 'and', operands: [f, g] }), row, attributes);
        expect(lhs).toBe(evaluate({ type: 'or', operands: [not(f), not(g)] }, row, attributes));
      }),
      fcParams(),
    );
  });

  it('orders number text as the numbers it spells', () => {
    // Integers and halves are exact doubles, so Number() is a trustworthy oracle here.
    const spelled = fc.tuple(fc.integer({ min: -1000, max: 1000 }), fc.boolean(), fc.nat(2)).map(([n, half, zeros]) => {
      const v = n + (half ? 0.5 : 0);
      const text = String(v).replace(/^(-?)/, `$1${'0'.repeat(zeros)}`);
      return { v, text: half ? `${text}${'0'.repeat(zeros)}` : text };
    });
    fc.assert(
      fc.property(spelled, spelled, fc.constantFrom(...OPS), (x, y, op) => {
        const expected = { '=': x.v === y.v, '<>': x.v !== y.v, '<': x.v < y.v, '<=': x.v <= y.v, '>': x.v > y.v, '>=': x.v >= y.v }[op];
        expect(selects(`n ${op} ${y.text}`, { n: x.text })).toBe(expected);
        expect(selects(`n ${op} ${y.text}`, { n: x.v })).toBe(expected);
      }),
      fcParams(),
    );
  });

  it('throws nothing but FilterError, at a position inside the text, on any input', () => {
    const alphabet = fc.constantFrom('a', 'b', ' ', '=', '<', '>', '!', '(', ')', ',', "'", '"', '.', '-', '1', 'e', 'AND ', 'OR ', 'NOT ', 'IN ', 'IS ', 'NULL', 'TRUE', 'branch.', '@');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 30 }).map((parts) => parts.join('')), (text) => {
        try {
          parseFilter(text);
        } catch (err) {
          expect(err).toBeInstanceOf(FilterError);
          const position = (err as FilterError).position;
          expect(position).toBeGreaterThanOrEqual(0);
          expect(position).toBeLessThanOrEqual(text.length);
        }
      }),
      fcParams(),
    );
  });
});
