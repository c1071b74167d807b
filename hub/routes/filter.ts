/**
 * Row filters of routes: a small SQL-like language that decides, per receiving branch, which rows
 * of a table that branch receives (`store_id = branch.store_id AND NOT archived = TRUE`).
 *
 * The hub never runs SQL: it evaluates filters on the row values it already holds, with SQL's
 * three-valued logic (a missing column or attribute is unknown, and only TRUE selects a row).
 * Values are usually PostgreSQL's text form ("17", "17.50", "t"), so comparisons are numeric when
 * both sides look like numbers and boolean against TRUE/FALSE. Pure; nothing here does I/O.
 */

export type ColumnKind = 'number' | 'text' | 'boolean' | 'other';

export interface FilterSchema {
  /** Columns of the table with their kind, when the hub knows them; absent = columns unchecked. */
  readonly columns?: ReadonlyMap<string, ColumnKind>;
  /** Attribute names that branches of the tenant carry; null = attributes unchecked. */
  readonly attributes: ReadonlySet<string> | null;
}

export type CompareOp = '=' | '<>' | '<' | '<=' | '>' | '>=';

/** A value on the right of a predicate. Numbers keep their text, so bigint ids and numerics compare exactly. */
export type Operand =
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'number'; readonly text: string }
  | { readonly type: 'boolean'; readonly value: boolean }
  | { readonly type: 'attribute'; readonly name: string };

export interface Comparison {
  readonly type: 'compare';
  readonly column: string;
  readonly op: CompareOp;
  readonly operand: Operand;
}

export interface InList {
  readonly type: 'in';
  readonly column: string;
  readonly negated: boolean;
  readonly items: readonly [Operand, ...Operand[]];
}

export interface IsNull {
  readonly type: 'isNull';
  readonly column: string;
  readonly negated: boolean;
}

export interface Not {
  readonly type: 'not';
  readonly operand: Filter;
}

/** AND and OR keep their operands as written: `(a AND b) AND c` is not flattened, so text round-trips. */
export interface And {
  readonly type: 'and';
  readonly operands: readonly [Filter, Filter, ...Filter[]];
}

export interface Or {
  readonly type: 'or';
  readonly operands: readonly [Filter, Filter, ...Filter[]];
}

export type Predicate = Comparison | InList | IsNull;
export type Filter = Predicate | Not | And | Or;

export const MAX_FILTER_LENGTH = 4096;
export const MAX_PREDICATES = 64;
/** Parentheses and NOTs together: bounds the parser's and the evaluator's recursion. */
export const MAX_DEPTH = 16;
export const MAX_IN_ITEMS = 256;

export class FilterError extends Error {
  override readonly name = 'FilterError';
  constructor(
    message: string,
    /** Offset in the filter text of the offending token. */
    readonly position: number,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Lexer

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'attribute' | 'op' | 'punct' | 'invalid' | 'end';

interface Token {
  readonly kind: TokenKind;
  /** The source text, for messages. */
  readonly raw: string;
  /** Decoded: a string's or quoted identifier's content, an attribute's name, `!=` as `<>`. */
  readonly value: string;
  readonly pos: number;
}

const KEYWORDS = new Set(['AND', 'OR', 'NOT', 'IN', 'IS', 'NULL', 'TRUE', 'FALSE']);
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
const ATTRIBUTE = /[A-Za-z_][A-Za-z0-9_-]*/y;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/y;
const OPERATOR = /<>|!=|<=|>=|=|<|>/y;
const SPACE = /\s+/y;
const BARE_COLUMN = /^[a-z_][a-z0-9_]*$/;
const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

function matchAt(re: RegExp, text: string, pos: number): string | null {
  re.lastIndex = pos;
  return re.exec(text)?.[0] ?? null;
}

function token(kind: TokenKind, raw: string, pos: number, value = raw): Token {
  return { kind, raw, value, pos };
}

/** A '…' string or "…" identifier; the delimiter doubled stands for itself, as in SQL. */
function quoted(text: string, pos: number, quote: string): Token {
  let value = '';
  let i = pos + 1;
  for (;;) {
    const close = text.indexOf(quote, i);
    if (close < 0) {
      const what = quote === "'" ? 'string' : 'quoted identifier';
      throw new FilterError(`filter: expected a closing ${quote} for the ${what} at ${pos}, found end of filter`, pos);
    }
    value += text.slice(i, close);
    if (text[close + 1] !== quote) {
      const raw = text.slice(pos, close + 1);
      if (quote === '"' && value === '') {
        throw new FilterError(`filter: expected a column name inside "" at ${pos}, found an empty one`, pos);
      }
      return token(quote === "'" ? 'string' : 'quoted', raw, pos, value);
    }
    value += quote;
    i = close + 2;
  }
}

/** A word, or `branch.<attr>` as one token so that `branch` stays usable as a column name. */
function word(text: string, pos: number): Token {
  const w = matchAt(WORD, text, pos) as string;
  const end = pos + w.length;
  if (w.toLowerCase() !== 'branch' || text[end] !== '.') return token('word', w, pos);
  const attr = matchAt(ATTRIBUTE, text, end + 1);
  if (attr === null) {
    const found = text.slice(end + 1, end + 2);
    throw new FilterError(
      `filter: expected an attribute name after "${w}." at ${end + 1}, found ${found === '' ? 'end of filter' : JSON.stringify(found)}`,
      end + 1,
    );
  }
  return token('attribute', text.slice(pos, end + 1 + attr.length), pos, attr);
}

/** A number glued to letters or dots (`17abc`, `1.2.3`) is one bad token, not two good ones. */
function number(text: string, pos: number, n: string): Token {
  const next = text[pos + n.length] ?? '';
  if (!/[A-Za-z0-9_.]/.test(next)) return token('number', n, pos);
  return token('invalid', matchAt(/[-A-Za-z0-9_.]+/y, text, pos) as string, pos);
}

function nextToken(text: string, pos: number): Token {
  const c = text[pos] as string;
  if (c === "'" || c === '"') return quoted(text, pos, c);
  if (/[A-Za-z_]/.test(c)) return word(text, pos);
  const n = matchAt(NUMBER, text, pos);
  if (n !== null) return number(text, pos, n);
  const op = matchAt(OPERATOR, text, pos);
  if (op !== null) return token('op', op, pos, op === '!=' ? '<>' : op);
  if (c === '(' || c === ')' || c === ',') return token('punct', c, pos);
  // Unknown characters reach the parser, which can say what it expected there instead.
  return token('invalid', String.fromCodePoint(text.codePointAt(pos) as number), pos);
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  for (;;) {
    pos += matchAt(SPACE, text, pos)?.length ?? 0;
    if (pos >= text.length) break;
    const t = nextToken(text, pos);
    tokens.push(t);
    pos += t.raw.length;
  }
  tokens.push(token('end', '', text.length));
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parser

function describe(t: Token): string {
  if (t.kind === 'end') return 'end of filter';
  return JSON.stringify(t.raw.length > 40 ? `${t.raw.slice(0, 40)}…` : t.raw);
}

function fail(t: Token, expected: string, hint?: string): never {
  throw new FilterError(`filter: ${expected} at ${t.pos}, found ${describe(t)}${hint ? ` (${hint})` : ''}`, t.pos);
}

function isKeyword(t: Token, keyword: string): boolean {
  return t.kind === 'word' && t.raw.toUpperCase() === keyword;
}

function isPunct(t: Token, p: string): boolean {
  return t.kind === 'punct' && t.raw === p;
}

/** Unquoted names fold to lower case, as unquoted identifiers do in PostgreSQL. */
function columnName(t: Token): string | null {
  if (t.kind === 'quoted') return t.value;
  if (t.kind === 'word' && !KEYWORDS.has(t.raw.toUpperCase())) return t.raw.toLowerCase();
  return null;
}

function freeze<T extends object>(node: T): T {
  return Object.freeze(node);
}

const VALUE = "a value ('text', a number, TRUE, FALSE or branch.<attribute>)";

class Parser {
  private i = 0;
  private depth = 0;
  private predicates = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.i++;
    return t;
  }

  parse(): Filter {
    const f = this.expr();
    const t = this.peek();
    if (t.kind !== 'end') fail(t, 'expected AND, OR or end of filter', isPunct(t, ')') ? 'no "(" to close' : undefined);
    return f;
  }

  private expr(): Filter {
    return this.chain('or', () => this.and());
  }

  private and(): Filter {
    return this.chain('and', () => this.unary());
  }

  /** `operand (KEYWORD operand)*`, a node only when there are two or more. */
  private chain(type: 'and' | 'or', operand: () => Filter): Filter {
    const operands: [Filter, ...Filter[]] = [operand()];
    while (isKeyword(this.peek(), type.toUpperCase())) {
      this.next();
      operands.push(operand());
    }
    if (operands.length === 1) return operands[0];
    return freeze({ type, operands: freeze(operands as [Filter, Filter, ...Filter[]]) });
  }

  private unary(): Filter {
    const t = this.peek();
    if (isKeyword(t, 'NOT')) return this.nested(t, () => freeze({ type: 'not', operand: this.unary() }));
    if (isPunct(t, '(')) return this.nested(t, () => this.parenthesized());
    return this.predicate();
  }

  private parenthesized(): Filter {
    const f = this.expr();
    const t = this.next();
    if (!isPunct(t, ')')) fail(t, 'expected AND, OR or ")"');
    return f;
  }

  /** Consumes `t` (NOT or "(") and parses what it opens one level deeper. */
  private nested(t: Token, inner: () => Filter): Filter {
    if (++this.depth > MAX_DEPTH) fail(t, `expected at most ${MAX_DEPTH} levels of NOT and parentheses`, 'nested too deep');
    this.next();
    const f = inner();
    this.depth--;
    return f;
  }

  private predicate(): Predicate {
    const t = this.next();
    const column = columnName(t);
    if (column === null) fail(t, 'expected a column, NOT or "("', this.columnHint(t));
    if (++this.predicates > MAX_PREDICATES) fail(t, `expected at most ${MAX_PREDICATES} predicates`, 'too many');
    const shown = t.kind === 'quoted' ? t.value : t.raw;
    const op = this.next();
    if (op.kind === 'op') return freeze({ type: 'compare', column, op: op.value as CompareOp, operand: this.operand(op) });
    if (isKeyword(op, 'IS')) return this.isNull(column);
    if (isKeyword(op, 'IN')) return this.inList(column, false);
    if (isKeyword(op, 'NOT')) {
      const inToken = this.next();
      if (!isKeyword(inToken, 'IN')) fail(inToken, `expected IN after "${shown} NOT"`);
      return this.inList(column, true);
    }
    return fail(op, `expected a comparison operator after "${shown}"`);
  }

  private columnHint(t: Token): string | undefined {
    if (t.kind === 'attribute') return 'branch attributes go on the right of a comparison';
    if (t.kind === 'string' || t.kind === 'number' || isKeyword(t, 'TRUE') || isKeyword(t, 'FALSE')) {
      return 'the column goes on the left of a comparison';
    }
    if (t.kind === 'word') return `${t.raw.toUpperCase()} is a keyword; quote it as "${t.raw.toLowerCase()}" to name a column`;
    return undefined;
  }

  private isNull(column: string): IsNull {
    let t = this.next();
    const negated = isKeyword(t, 'NOT');
    if (negated) t = this.next();
    if (!isKeyword(t, 'NULL')) fail(t, negated ? 'expected NULL after IS NOT' : 'expected NULL or NOT NULL after IS');
    return freeze({ type: 'isNull', column, negated });
  }

  private inList(column: string, negated: boolean): InList {
    const open = this.next();
    if (!isPunct(open, '(')) fail(open, 'expected "(" after IN');
    const items: [Operand, ...Operand[]] = [this.operand(open)];
    for (;;) {
      const t = this.next();
      if (isPunct(t, ')')) break;
      if (!isPunct(t, ',')) fail(t, 'expected "," or ")" in the IN list');
      if (items.length >= MAX_IN_ITEMS) fail(this.peek(), `expected at most ${MAX_IN_ITEMS} items in an IN list`, 'too many');
      items.push(this.operand(t));
    }
    return freeze({ type: 'in', column, negated, items: freeze(items) });
  }

  private operand(after: Token): Operand {
    const t = this.next();
    if (t.kind === 'string') return freeze({ type: 'string', value: t.value });
    if (t.kind === 'number') return freeze({ type: 'number', text: t.raw });
    if (t.kind === 'attribute') return freeze({ type: 'attribute', name: t.value });
    if (isKeyword(t, 'TRUE') || isKeyword(t, 'FALSE')) return freeze({ type: 'boolean', value: isKeyword(t, 'TRUE') });
    if (isKeyword(t, 'NULL')) fail(t, `expected ${VALUE} after "${after.raw}"`, 'test for NULL with IS NULL');
    return fail(t, `expected ${VALUE} after "${after.raw}"`, columnName(t) !== null ? 'a column can only be on the left' : undefined);
  }
}

/** Parses filter text; throws `FilterError` naming what was expected where. */
export function parseFilter(text: string): Filter {
  if (text.length > MAX_FILTER_LENGTH) {
    throw new FilterError(`filter: expected at most ${MAX_FILTER_LENGTH} characters, found ${text.length}`, MAX_FILTER_LENGTH);
  }
  return new Parser(tokenize(text)).parse();
}

// ---------------------------------------------------------------------------------------------
// Walking the tree

function predicates(f: Filter, out: Predicate[] = []): Predicate[] {
  switch (f.type) {
    case 'not':
      return predicates(f.operand, out);
    case 'and':
    case 'or':
      for (const o of f.operands) predicates(o, out);
      return out;
    default:
      out.push(f);
      return out;
  }
}

function operandsOf(p: Predicate): readonly Operand[] {
  if (p.type === 'compare') return [p.operand];
  if (p.type === 'in') return p.items;
  return [];
}

export function filterColumns(f: Filter): ReadonlySet<string> {
  return new Set(predicates(f).map((p) => p.column));
}

export function filterAttributes(f: Filter): ReadonlySet<string> {
  const names = predicates(f).flatMap((p) => operandsOf(p).flatMap((o) => (o.type === 'attribute' ? [o.name] : [])));
  return new Set(names);
}

// ---------------------------------------------------------------------------------------------
// Checks against a schema

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/;

/** Edit distance, so that the column meant by a typo is listed first. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row.push(Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

function unknownColumn(column: string, columns: ReadonlyMap<string, ColumnKind>): string {
  const known = [...columns.keys()].sort((a, b) => distance(column, a) - distance(column, b) || (a < b ? -1 : a > b ? 1 : 0));
  if (known.length === 0) return `filter: no column "${column}"; the table has no known columns`;
  const more = known.length > 5 ? `, … (${known.length - 5} more)` : '';
  return `filter: no column "${column}"; the table has ${known.slice(0, 5).join(', ')}${more}`;
}

function showOperand(o: Operand): string {
  switch (o.type) {
    case 'string':
      return `'${o.value.replaceAll("'", "''")}'`;
    case 'number':
      return o.text;
    case 'boolean':
      return o.value ? 'TRUE' : 'FALSE';
    case 'attribute':
      return `branch.${o.name}`;
  }
}

/** Why `o` cannot sensibly be compared with a column of `kind`, or null. Attributes are text of unknown content. */
function literalMismatch(column: string, kind: ColumnKind, o: Operand): string | null {
  const mismatch = (why = '') => `filter: column "${column}" is ${kind} but is compared with ${showOperand(o)}${why}`;
  if (kind === 'other' || o.type === 'attribute') return null;
  if (o.type === 'number' && (kind === 'text' || kind === 'boolean')) return mismatch();
  if (o.type === 'boolean' && kind !== 'boolean') return mismatch();
  if (o.type === 'string' && kind === 'number' && !DECIMAL.test(o.value)) return mismatch(', which is not a number');
  return null;
}

function typeProblems(p: Predicate, kind: ColumnKind): string[] {
  const problems: string[] = [];
  if (p.type === 'compare' && kind === 'boolean' && p.op !== '=' && p.op !== '<>') {
    problems.push(`filter: column "${p.column}" is boolean and cannot be compared with ${p.op}`);
  }
  for (const o of operandsOf(p)) {
    const m = literalMismatch(p.column, kind, o);
    if (m !== null) problems.push(m);
  }
  return problems;
}

function predicateProblems(p: Predicate, schema: FilterSchema): string[] {
  const problems = operandsOf(p).flatMap((o) =>
    o.type === 'attribute' && schema.attributes !== null && !schema.attributes.has(o.name) ? [`filter: no branch of this tenant has attribute "${o.name}"`] : [],
  );
  if (schema.columns === undefined) return problems;
  const kind = schema.columns.get(p.column);
  if (kind === undefined) return [unknownColumn(p.column, schema.columns), ...problems];
  return [...problems, ...typeProblems(p, kind)];
}

/** Problems against a schema, each a sentence naming the column/attribute: [] when fine. */
export function checkFilter(f: Filter, schema: FilterSchema): string[] {
  // Each problem once, in the order of the text, however often the filter repeats it.
  return [...new Set(predicates(f).flatMap((p) => predicateProblems(p, schema)))];
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/** A comparable value: numbers and text keep their text so that decimals compare exactly. */
type Value = { readonly kind: 'number' | 'text'; readonly text: string } | { readonly kind: 'boolean'; readonly value: boolean };

/** SQL's three values: null is unknown. */
type Truth = boolean | null;

/** `sign × 0.digits × 10^exponent`, `digits` without leading zeros; zero has sign 0. Trailing zeros compare away in `compareDecimal`. */
interface Decimal {
  readonly sign: -1 | 0 | 1;
  readonly digits: string;
  readonly exponent: number;
}

function parseDecimal(text: string): Decimal | null {
  const m = DECIMAL.exec(text);
  if (m === null) return null;
  const whole = m[2] as string;
  const all = whole + (m[3] ?? '');
  const significant = all.replace(/^0+/, '');
  if (significant === '') return { sign: 0, digits: '', exponent: 0 };
  const leadingZeros = all.length - significant.length;
  return {
    sign: m[1] === '-' ? -1 : 1,
    digits: significant,
    exponent: whole.length - leadingZeros + Number(m[4] ?? '0'),
  };
}

function compareDecimal(a: Decimal, b: Decimal): -1 | 0 | 1 {
  if (a.sign !== b.sign) return a.sign < b.sign ? -1 : 1;
  if (a.sign === 0) return 0;
  let magnitude: -1 | 0 | 1 = 0;
  if (a.exponent !== b.exponent) {
    magnitude = a.exponent < b.exponent ? -1 : 1;
  } else {
    const width = Math.max(a.digits.length, b.digits.length);
    const da = a.digits.padEnd(width, '0');
    const db = b.digits.padEnd(width, '0');
    magnitude = da === db ? 0 : da < db ? -1 : 1;
  }
  return (magnitude * a.sign) as -1 | 0 | 1;
}

/** A row value as a `Value`; null for SQL NULL or a missing column. */
function rowValue(row: Readonly<Record<string, unknown>>, column: string): Value | null {
  // Own properties only: a column named "constructor" must not find Object's.
  const v = Object.hasOwn(row, column) ? row[column] : undefined;
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return { kind: 'text', text: v };
  if (typeof v === 'boolean') return { kind: 'boolean', value: v };
  if (typeof v === 'number') return Number.isFinite(v) ? { kind: 'number', text: String(v) } : { kind: 'text', text: String(v) };
  if (typeof v === 'bigint') return { kind: 'number', text: v.toString() };
  return { kind: 'text', text: JSON.stringify(v) ?? String(v) };
}

function operandValue(o: Operand, attributes: Readonly<Record<string, string>>): Value | null {
  switch (o.type) {
    case 'string':
      return { kind: 'text', text: o.value };
    case 'number':
      return { kind: 'number', text: o.text };
    case 'boolean':
      return { kind: 'boolean', value: o.value };
    case 'attribute': {
      const v = Object.hasOwn(attributes, o.name) ? attributes[o.name] : undefined;
      return typeof v === 'string' ? { kind: 'text', text: v } : null;
    }
  }
}

function asDecimal(v: Value): Decimal | null {
  return v.kind === 'boolean' ? null : parseDecimal(v.text);
}

/** PostgreSQL writes booleans as "t"/"f"; other clients may send "true"/"false". */
function asBoolean(v: Value): boolean | null {
  if (v.kind === 'boolean') return v.value;
  const t = v.text.toLowerCase();
  if (t === 't' || t === 'true') return true;
  if (t === 'f' || t === 'false') return false;
  return null;
}

function asText(v: Value): string {
  if (v.kind === 'boolean') return v.value ? 'true' : 'false';
  return v.text;
}

function order<T>(a: T, b: T): -1 | 0 | 1 {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Numeric when both sides are numbers, boolean when one side is a boolean, else by UTF-16 code units. */
function compareValues(a: Value, b: Value): -1 | 0 | 1 {
  const da = asDecimal(a);
  const db = asDecimal(b);
  if (da !== null && db !== null) return compareDecimal(da, db);
  if (a.kind === 'boolean' || b.kind === 'boolean') {
    const ba = asBoolean(a);
    const bb = asBoolean(b);
    if (ba !== null && bb !== null) return order(Number(ba), Number(bb));
  }
  return order(asText(a), asText(b));
}

function holds(op: CompareOp, c: -1 | 0 | 1): boolean {
  switch (op) {
    case '=':
      return c === 0;
    case '<>':
      return c !== 0;
    case '<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
  }
}

/** SQL's IN: true on a match, else unknown if any item (or the value) is unknown, else false. */
function inList(value: Value | null, items: readonly (Value | null)[]): Truth {
  if (value === null) return null;
  let unknown = false;
  for (const item of items) {
    if (item === null) unknown = true;
    else if (compareValues(value, item) === 0) return true;
  }
  return unknown ? null : false;
}

function negate(t: Truth): Truth {
  return t === null ? null : !t;
}

type Env = { readonly row: Readonly<Record<string, unknown>>; readonly attributes: Readonly<Record<string, string>> };

function evaluatePredicate(p: Predicate, env: Env): Truth {
  const value = rowValue(env.row, p.column);
  if (p.type === 'isNull') return (value === null) !== p.negated;
  if (p.type === 'in') {
    const found = inList(value, p.items.map((o) => operandValue(o, env.attributes)));
    return p.negated ? negate(found) : found;
  }
  const other = operandValue(p.operand, env.attributes);
  if (value === null || other === null) return null;
  return holds(p.op, compareValues(value, other));
}

/** AND: false wins over unknown; OR: true wins over unknown. */
function combine(operands: readonly Filter[], env: Env, dominant: boolean): Truth {
  let unknown = false;
  for (const o of operands) {
    const t = evaluate3(o, env);
    if (t === dominant) return dominant;
    if (t === null) unknown = true;
  }
  return unknown ? null : !dominant;
}

function evaluate3(f: Filter, env: Env): Truth {
  switch (f.type) {
    case 'not':
      return negate(evaluate3(f.operand, env));
    case 'and':
      return combine(f.operands, env, false);
    case 'or':
      return combine(f.operands, env, true);
    default:
      return evaluatePredicate(f, env);
  }
}

/** Whether `row` is selected for a branch with `attributes`: only TRUE selects, unknown does not. */
export function evaluate(f: Filter, row: Readonly<Record<string, unknown>>, attributes: Readonly<Record<string, string>>): boolean {
  return evaluate3(f, { row, attributes }) === true;
}

/**
 * A top-level conjunct `column = branch.attr` (the whole filter, or one operand of a top-level AND
 * chain): lets the hub look receivers up by attribute value instead of testing every branch.
 * null when there is none. Equality here is numeric for numbers ("17.0" = "17"), so a lookup by
 * exact text must normalise both sides the same way, and candidates still go through `evaluate`.
 */
export function equalityIndex(f: Filter): { readonly column: string; readonly attribute: string } | null {
  if (f.type === 'compare') {
    return f.op === '=' && f.operand.type === 'attribute' ? { column: f.column, attribute: f.operand.name } : null;
  }
  if (f.type !== 'and') return null;
  // `(a AND b) AND c` is still one chain of conjuncts.
  for (const o of f.operands) {
    const found = equalityIndex(o);
    if (found !== null) return found;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function formatColumn(name: string): string {
  if (name === '') throw new Error('filter: a column name cannot be empty');
  if (BARE_COLUMN.test(name) && !KEYWORDS.has(name.toUpperCase())) return name;
  return `"${name.replaceAll('"', '""')}"`;
}

function formatOperand(o: Operand): string {
  if (o.type === 'attribute' && !ATTRIBUTE_NAME.test(o.name)) throw new Error(`filter: attribute name ${JSON.stringify(o.name)} cannot be written`);
  if (o.type === 'number' && !DECIMAL.test(o.text)) throw new Error(`filter: ${JSON.stringify(o.text)} is not a number`);
  return showOperand(o);
}

function formatPredicate(p: Predicate): string {
  const column = formatColumn(p.column);
  switch (p.type) {
    case 'compare':
      return `${column} ${p.op} ${formatOperand(p.operand)}`;
    case 'in':
      return `${column} ${p.negated ? 'NOT IN' : 'IN'} (${p.items.map(formatOperand).join(', ')})`;
    case 'isNull':
      return `${column} IS ${p.negated ? 'NOT NULL' : 'NULL'}`;
  }
}

/** Binding strength: OR < AND < NOT and predicates. */
function strength(f: Filter): number {
  return f.type === 'or' ? 0 : f.type === 'and' ? 1 : 2;
}

/** `f` as an operand of a node of strength `parent`; an equal strength needs parentheses too, so nesting survives. */
function formatChild(f: Filter, parent: number): string {
  const text = formatFilter(f);
  return strength(f) <= parent && strength(f) < 2 ? `(${text})` : text;
}

/** Canonical text (keywords upper case, minimal parentheses that keep the meaning); parseFilter(formatFilter(f)) deep-equals f. */
export function formatFilter(f: Filter): string {
  switch (f.type) {
    case 'not':
      return `NOT ${formatChild(f.operand, 2)}`;
    case 'and':
      return f.operands.map((o) => formatChild(o, 1)).join(' AND ');
    case 'or':
      return f.operands.map((o) => formatChild(o, 0)).join(' OR ');
    default:
      return formatPredicate(f);
  }
}
