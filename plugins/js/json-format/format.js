// The pure part of `json-format`: params, JSON parsing and printing.
//
// Nothing here touches the component imports, so `node --test` runs it as is.
//
// A file's normalised form is `JSON.stringify(value, null, indent)` plus a
// final newline (CRLF throughout if the file's first line ends in CRLF, and
// after a byte-order mark if the file starts with one), with two
// differences that keep the data intact where `JSON.parse` would not:
// - numbers are copied as written (`1.0`, `1e3` and 12345678901234567890 stay
//   as they are instead of becoming `1`, `1000` and 12345678901234567000);
// - an object that repeats a key keeps every member, in order (sorting is
//   stable, so the last one still wins for readers that keep the last).
// Strings are decoded and re-encoded as `JSON.stringify` writes them, which
// never changes their value (`"\u00e9"` becomes `"é"`, `"\/"` becomes `"/"`).

import { InvalidInput, NotText, Params } from '../../../sdk/js/lockstep/core.js';

/** A file that is not valid JSON, with the 1-based position of the fault. */
export class JsonSyntaxError extends Error {
  constructor(message, offset, text) {
    const { line, column } = position(text, offset);
    super(`${message} at line ${line}, column ${column}`);
    this.offset = offset;
    this.line = line;
    this.column = column;
  }
}

/** Default params. */
export const DEFAULTS = Object.freeze({
  globs: '**/*.json',
  indent: '2',
  sort_keys: 'false',
  lock: 'json-format',
});

/**
 * Deepest nesting of arrays and objects `printJson` accepts, well within the
 * engine's stack. (Files the engine's JSON.stringify prints faithfully, see
 * `printNative`, are not held to it.)
 */
export const MAX_DEPTH = 1000;

/** Characters a lock name may use (the host's rule). */
const LOCK_NAME = /^[A-Za-z0-9._:/-]+$/;

/**
 * Reads the plugin's params (action or step params alike).
 *
 * @returns {{globs: string[], indent: string, indentParam: string,
 *   sortKeys: boolean, lock: string}} where `indent` is the text of one
 *   level of indentation ("" for compact output).
 * @throws {InvalidInput}
 */
export function parseOptions(pairs) {
  const params = new Params(pairs);
  const get = (key) => params.get(key, DEFAULTS[key]);

  const globs = params.list('globs', DEFAULTS.globs);
  if (globs.length === 0) {
    throw new InvalidInput('param `globs` names no globs');
  }

  const rawIndent = get('indent');
  const indentParam = rawIndent === '\t' ? 'tab' : rawIndent.trim();
  let indent;
  if (indentParam === 'tab') {
    indent = '\t';
  } else if (/^\d{1,2}$/.test(indentParam) && Number(indentParam) <= 10) {
    indent = ' '.repeat(Number(indentParam));
  } else {
    throw new InvalidInput(
      `param \`indent\` must be a number of spaces from 0 to 10 or "tab", not ${JSON.stringify(indentParam)}`,
    );
  }

  const sortParam = get('sort_keys').trim();
  if (sortParam !== 'true' && sortParam !== 'false') {
    throw new InvalidInput(
      `param \`sort_keys\` must be "true" or "false", not ${JSON.stringify(sortParam)}`,
    );
  }

  const lock = get('lock').trim();
  if (!LOCK_NAME.test(lock)) {
    throw new InvalidInput(
      `param \`lock\` must be a non-empty name of letters, digits and -_.:/, not ${JSON.stringify(lock)}`,
    );
  }

  return {
    globs,
    indent,
    indentParam: indent === '\t' ? 'tab' : String(indent.length),
    sortKeys: sortParam === 'true',
    lock,
  };
}

/** The params a step needs to format `path` with `options`. */
export function stepParams(options, path) {
  return [
    ['path', path],
    ['indent', options.indentParam],
    ['sort_keys', String(options.sortKeys)],
    ['lock', options.lock],
  ];
}

/**
 * Whether a file `glob` listed is one to format: files inside a
 * `node_modules` folder are not, unless the glob names `node_modules`.
 */
export function selects(glob, path) {
  if (glob.includes('node_modules')) return true;
  return !(path.startsWith('node_modules/') || path.includes('/node_modules/'));
}

/** Orders strings by Unicode code point (as UTF-8 bytes sort, and `jq -S`). */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800..U+DFFF) stand for code points above U+FFFF, so
    // they sort after every other UTF-16 unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** 1-based line and column (in UTF-16 units) of `offset` in `text`. */
function position(text, offset) {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

// Sticky patterns, matched at the parser's position with `test`, which
// allocates nothing.
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// A string without escapes: printed as written, since JSON.stringify would
// write it the same way.
const PLAIN_STRING = /"[^"\\\u0000-\u001f]*"/y;
const STRING_SPECIAL = /["\\\u0000-\u001f]/g;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const QUOTE = 34;
const COMMA = 44;
const COLON = 58;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;
const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;

/**
 * Parses JSON `text` and prints it the way `JSON.stringify(value, null,
 * indent)` does, in one pass and without building the value (see the top
 * of this file for how numbers and repeated keys are kept).
 *
 * @param {string} text JSON text, without a byte-order mark
 * @param {{indent?: string, sortKeys?: boolean}} options `indent` is the
 *   text of one level ("" prints everything on one line)
 * @returns {string} the printed JSON, without a final newline
 * @throws {JsonSyntaxError}
 */
export function printJson(text, { indent = '  ', sortKeys = false } = {}) {
  const pretty = indent !== '';
  const colon = pretty ? ': ' : ':';
  const end = text.length;
  let pos = 0;

  const fail = (message, at = pos) => {
    throw new JsonSyntaxError(message, at, text);
  };
  const unexpected = () =>
    fail(pos < end ? `unexpected ${JSON.stringify(text[pos])}` : 'unexpected end of input');
  const skipWhitespace = () => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c !== SPACE && c !== LF && c !== CR && c !== TAB) return;
      pos++;
    }
  };

  // A string at `pos`, as [printed form, value]. The value is only worked
  // out if `wantValue` (object keys, for sorting).
  const string = (wantValue) => {
    const start = pos;
    PLAIN_STRING.lastIndex = pos;
    if (PLAIN_STRING.test(text)) {
      pos = PLAIN_STRING.lastIndex;
      const raw = text.slice(start, pos);
      return [raw, wantValue ? raw.slice(1, -1) : undefined];
    }
    let i = pos + 1;
    for (;;) {
      STRING_SPECIAL.lastIndex = i;
      const m = STRING_SPECIAL.exec(text);
      if (m === null) fail('unterminated string', start);
      i = m.index;
      if (m[0] === '"') break;
      if (m[0] !== '\\') fail('control character in string', i);
      ESCAPE.lastIndex = i;
      if (!ESCAPE.test(text)) fail('invalid escape in string', i);
      i = ESCAPE.lastIndex;
    }
    pos = i + 1;
    const value = JSON.parse(text.slice(start, pos));
    return [JSON.stringify(value), value];
  };

  // The value at `pos` (after whitespace), printed as if it started at a
  // line indented by `pad`.
  const value = (pad, depth) => {
    skipWhitespace();
    const c = text.charCodeAt(pos);
    if (c === QUOTE) return string(false)[0];
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
      const isObject = c === OPEN_BRACE;
      const close = isObject ? CLOSE_BRACE : CLOSE_BRACKET;
      const inner = pad + indent;
      pos++;
      skipWhitespace();
      if (text.charCodeAt(pos) === close) {
        pos++;
        return isObject ? '{}' : '[]';
      }
      // Objects being sorted collect [key, printed member]; everything else
      // is printed as it is read.
      const members = isObject && sortKeys ? [] : null;
      let out = '';
      for (let first = true; ; first = false) {
        let item;
        if (isObject) {
          skipWhitespace();
          if (text.charCodeAt(pos) !== QUOTE) unexpected();
          const [printedKey, key] = string(members !== null);
          skipWhitespace();
          if (text.charCodeAt(pos) !== COLON) unexpected();
          pos++;
          item = printedKey + colon + value(inner, depth + 1);
          if (members !== null) members.push([key, item]);
        } else {
          item = value(inner, depth + 1);
        }
        if (members === null) out += first ? item : pretty ? `,\n${inner}${item}` : `,${item}`;
        skipWhitespace();
        const next = text.charCodeAt(pos);
        if (next === COMMA) {
          pos++;
        } else if (next === close) {
          pos++;
          break;
        } else {
          unexpected();
        }
      }
      if (members !== null) {
        // Array.prototype.sort is stable: repeated keys keep their order.
        members.sort((a, b) => compareCodePoints(a[0], b[0]));
        out = members.map((m) => m[1]).join(pretty ? `,\n${inner}` : ',');
      }
      const [open, closeText] = isObject ? ['{', '}'] : ['[', ']'];
      return pretty ? `${open}\n${inner}${out}\n${pad}${closeText}` : `${open}${out}${closeText}`;
    }
    if (c === 116 /* t */ && text.startsWith('true', pos)) {
      pos += 4;
      return 'true';
    }
    if (c === 102 /* f */ && text.startsWith('false', pos)) {
      pos += 5;
      return 'false';
    }
    if (c === 110 /* n */ && text.startsWith('null', pos)) {
      pos += 4;
      return 'null';
    }
    const start = pos;
    NUMBER.lastIndex = pos;
    if (!NUMBER.test(text)) unexpected();
    pos = NUMBER.lastIndex;
    return text.slice(start, pos);
  };

  const out = value('', 0);
  skipWhitespace();
  if (pos < end) unexpected();
  return out;
}

/**
 * `text` without any JSON whitespace. Raw tabs and line breaks cannot occur
 * inside JSON strings, so this only removes spaces from strings.
 */
function squeeze(text) {
  return text.replaceAll(' ', '').replaceAll('\n', '').replaceAll('\r', '').replaceAll('\t', '');
}

/**
 * `printJson(text, options)`, computed by the engine's own JSON.parse and
 * JSON.stringify (in a component, over ten times faster than `printJson`
 * and with half the memory) when that gives the same result; otherwise null.
 *
 * It does exactly when `JSON.stringify(JSON.parse(text))` has the tokens of
 * `text`: then no number was rewritten, no repeated key dropped and no
 * integer-like key moved first, and every string is already written as
 * JSON.stringify writes it. Comparing the two without any whitespace shows
 * that: JSON.stringify keeps the spaces inside strings, so any difference
 * in tokens is a difference in other characters. (A file already in its
 * normalised form is recognised by a plain comparison first.) With
 * `sortKeys`, the sorted objects must also keep their keys in order, which
 * JavaScript does not do for integer-like keys.
 */
export function printNative(text, { indent = '  ', sortKeys = false } = {}) {
  try {
    const value = JSON.parse(text);
    const printed = sortKeys ? sortedCopy(value) : value;
    if (printed === undefined) return null;
    const out = JSON.stringify(printed, null, indent);
    if (text.trimEnd() !== out && squeeze(text) !== squeeze(JSON.stringify(value))) return null;
    return out;
  } catch {
    // Invalid JSON (printJson says where), or nested too deep for the
    // engine's stack.
    return null;
  }
}

/** UTF-16 units that the engine's sort and code point order may disagree on. */
const HIGH_UNITS = /[\ud800-\uffff]/;

/** A sorted copy of `value` (see printNative), or undefined if none will do. */
function sortedCopy(value) {
  let ok = true;
  const sort = (v) => {
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map(sort);
    const keys = Object.keys(v);
    // The engine's own sort (by UTF-16 unit) is much faster than one with a
    // comparator, and orders by code point too unless a key has a surrogate.
    keys.sort();
    if (HIGH_UNITS.test(keys.join(''))) keys.sort(compareCodePoints);
    // No prototype, so that a "__proto__" key is an ordinary property.
    const copy = Object.create(null);
    for (const k of keys) copy[k] = sort(v[k]);
    const order = Object.keys(copy);
    for (let i = 0; i < keys.length; i++) {
      if (order[i] !== keys[i]) ok = false;
    }
    return copy;
  };
  const copy = sort(value);
  return ok ? copy : undefined;
}

/**
 * The normalised form of JSON `text`: printed with `options`, ending with one
 * newline, keeping the text's line ending (CRLF if its first line ends so)
 * and a leading byte-order mark.
 *
 * @throws {JsonSyntaxError}
 */
export function formatText(text, options) {
  const bom = text.startsWith('\uFEFF');
  const body = bom ? text.slice(1) : text;
  let out = (printNative(body, options) ?? printJson(body, options)) + '\n';
  const nl = body.indexOf('\n');
  if (nl > 0 && body[nl - 1] === '\r') out = out.replace(/\n/g, '\r\n');
  return bom ? `\uFEFF${out}` : out;
}

/**
 * The normalised form of the file `path` whose contents are `text`, or null
 * when the file is in that form already.
 *
 * @throws {NotText} when `text` is not valid JSON, saying where.
 */
export function formatFile(path, text, options) {
  let formatted;
  try {
    formatted = formatText(text, options);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new NotText(`${path}: not valid JSON: ${e.message}`);
    throw e;
  }
  return formatted === text ? null : formatted;
}
