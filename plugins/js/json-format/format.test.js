// Unit tests of the pure formatting logic: `node --test` (from plugins/js).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InvalidInput, NotText, Params } from '../../../sdk/js/lockstep/core.js';
import {
  DEFAULTS,
  JsonSyntaxError,
  MAX_DEPTH,
  compareCodePoints,
  formatFile,
  formatText,
  parseOptions,
  printJson,
  printNative,
  selects,
  stepParams,
} from './format.js';

/** What JSON.stringify makes of `json`, for documents it keeps intact. */
const stringify = (json, indent = 2) => JSON.stringify(JSON.parse(json), null, indent);

describe('parseOptions', () => {
  it('has defaults', () => {
    assert.deepEqual(parseOptions([]), {
      globs: ['**/*.json'],
      indent: '  ',
      indentParam: '2',
      sortKeys: false,
      lock: 'json-format',
    });
    assert.equal(DEFAULTS.lock, 'json-format');
  });

  it('reads every param', () => {
    const o = parseOptions([
      ['globs', ' a/*.json, ,b/**/*.json '],
      ['indent', '4'],
      ['sort_keys', 'true'],
      ['lock', 'fmt/json'],
    ]);
    assert.deepEqual(o.globs, ['a/*.json', 'b/**/*.json']);
    assert.equal(o.indent, '    ');
    assert.equal(o.sortKeys, true);
    assert.equal(o.lock, 'fmt/json');
    assert.equal(parseOptions([['indent', 'tab']]).indent, '\t');
    assert.equal(parseOptions([['indent', '\t']]).indentParam, 'tab');
    assert.equal(parseOptions([['indent', '0']]).indent, '');
  });

  it('rejects bad params', () => {
    for (const params of [
      [['globs', ' , ']],
      [['indent', '11']],
      [['indent', '-1']],
      [['indent', 'two']],
      [['indent', '']],
      [['sort_keys', 'yes']],
      [['lock', '']],
      [['lock', 'has space']],
    ]) {
      assert.throws(() => parseOptions(params), InvalidInput, JSON.stringify(params));
    }
  });

  it('round-trips through step params', () => {
    const o = parseOptions([['indent', 'tab'], ['sort_keys', 'true'], ['lock', 'x'], ['globs', 'a']]);
    const params = stepParams(o, 'a/b.json');
    assert.equal(new Params(params).get('path'), 'a/b.json');
    const again = parseOptions(params);
    assert.deepEqual({ ...again, globs: o.globs }, o);
  });
});

describe('printJson', () => {
  const samples = [
    '{}',
    '[]',
    '0',
    '-1.5e-7',
    '"x"',
    'true',
    'null',
    '{"a":1,"b":[1,2,{"c":null}],"d":{},"e":[],"f":"g"}',
    '[[[]],[{}],{"a":[{"b":{}}]}]',
    ' \t\r\n{ "a" : [ 1 , 2 ] }\n ',
  ];

  it('matches JSON.stringify where values round-trip', () => {
    for (const json of samples) {
      for (const indent of [2, 4, 0, '\t']) {
        const unit = typeof indent === 'number' ? ' '.repeat(indent) : indent;
        assert.equal(printJson(json, { indent: unit }), stringify(json, indent), json);
      }
    }
  });

  it('keeps numbers as written', () => {
    const json = '[12345678901234567890,1.0,1e3,-0,0.1000,1E+2]';
    assert.equal(printJson(json, { indent: '' }), json);
    assert.notEqual(stringify(json, 0), json);
  });

  it('normalises strings without changing them', () => {
    assert.equal(printJson('"caf\\u00e9 \\/ \\t"', { indent: '' }), '"café / \\t"');
    assert.equal(printJson('"\\u0001\\ud800"', { indent: '' }), '"\\u0001\\ud800"');
    assert.equal(printJson('"\\u2028 \\"q\\" \\\\"', { indent: '' }), '"\u2028 \\"q\\" \\\\"');
    assert.equal(printJson('{"\\u0061":1}', { indent: '' }), '{"a":1}');
  });

  it('keeps repeated keys in order', () => {
    assert.equal(printJson('{"b":1,"a":2,"b":3}', { indent: '' }), '{"b":1,"a":2,"b":3}');
    assert.equal(
      printJson('{"b":1,"a":2,"b":3}', { indent: '', sortKeys: true }),
      '{"a":2,"b":1,"b":3}',
    );
  });

  it('sorts keys recursively by code point', () => {
    const json = '{"b":{"y":1,"x":[{"d":1,"c":2}]},"a":0,"B":2,"é":3,"😀":4,"\uffff":5,"\\u0062a":6}';
    assert.equal(
      printJson(json, { indent: '', sortKeys: true }),
      '{"B":2,"a":0,"b":{"x":[{"c":2,"d":1}],"y":1},"ba":6,"é":3,"\uffff":5,"😀":4}',
    );
    // Arrays keep their order.
    assert.equal(printJson('[3,1,2]', { indent: '', sortKeys: true }), '[3,1,2]');
  });

  it('prints sorted objects like JSON.stringify of the sorted value', () => {
    const json = '{"z":{"b":[1,{"y":2,"x":1}],"a":true},"m":[],"a":{}}';
    const sorted = { a: {}, m: [], z: { a: true, b: [1, { x: 1, y: 2 }] } };
    assert.equal(printJson(json, { indent: '  ', sortKeys: true }), JSON.stringify(sorted, null, 2));
  });

  it('rejects invalid JSON with a position', () => {
    const bad = [
      ['', 'unexpected end of input at line 1, column 1'],
      ['{"a":1,}', 'unexpected "}" at line 1, column 8'],
      ['[1,\n2,\n]', 'unexpected "]" at line 3, column 1'],
      ['{a:1}', 'unexpected "a" at line 1, column 2'],
      ['[01]', 'unexpected "1" at line 1, column 3'],
      ['[1.]', 'unexpected "." at line 1, column 3'],
      ['"abc', 'unterminated string at line 1, column 1'],
      ['"a\tb"', 'control character in string at line 1, column 3'],
      ['"\\x"', 'invalid escape in string at line 1, column 2'],
      ['"\\u12"', 'invalid escape in string at line 1, column 2'],
      ['{} {}', 'unexpected "{" at line 1, column 4'],
      ["{'a':1}", 'unexpected "\'" at line 1, column 2'],
      ['NaN', 'unexpected "N" at line 1, column 1'],
      ['tru', 'unexpected "t" at line 1, column 1'],
      ['// c\n{}', 'unexpected "/" at line 1, column 1'],
    ];
    for (const [json, message] of bad) {
      assert.throws(() => printJson(json), (e) => e instanceof JsonSyntaxError && e.message === message, json);
      assert.throws(() => JSON.parse(json), SyntaxError, json);
    }
  });

  it('limits nesting', () => {
    const ok = '['.repeat(MAX_DEPTH) + ']'.repeat(MAX_DEPTH);
    assert.equal(printJson(ok, { indent: '' }), ok);
    const deep = '['.repeat(MAX_DEPTH + 1) + ']'.repeat(MAX_DEPTH + 1);
    assert.throws(() => printJson(deep), /nested deeper than 1000 levels/);
  });
});

describe('printNative', () => {
  const options = [
    { indent: '  ' },
    { indent: '\t', sortKeys: true },
    { indent: '', sortKeys: true },
    { indent: '    ', sortKeys: false },
  ];

  it('agrees with printJson when it answers', () => {
    const docs = [
      'null',
      '{"b":{"y":[1,2.5,-3e-7,{"q":null}],"x":"\\n\\"\\\\"},"a":[],"c":{}}',
      ' [ "é" , true , false , { "a" : 0 } ] ',
      '{"__proto__":{"b":1,"a":2},"constructor":[]}',
      '{"b":1,"a":"x\\u001fy"}',
      '{ "a b" : " x ", "c" : [ " ", "" ] }',
      '{"😀":1,"\uffff":2,"é":3,"a":4}',
    ];
    for (const doc of docs) {
      for (const o of options) {
        const native = printNative(doc, o);
        assert.notEqual(native, null, doc);
        assert.equal(native, printJson(doc, o), `${doc} ${JSON.stringify(o)}`);
      }
    }
  });

  it('declines whatever JSON.parse would not keep', () => {
    for (const doc of [
      '[1.0]',
      '[1e3]',
      '[12345678901234567890]',
      '[-0]',
      '{"a":1,"a":2}',
      '{"b":1,"2":2,"1":3}',
      '["\\u00e9"]',
      '["\\/"]',
      '["a\\u0020b"]',
      '{"a":1,}',
      '',
    ]) {
      assert.equal(printNative(doc, { indent: '  ' }), null, doc);
    }
    // Sorted integer-like keys would come out in numeric order.
    assert.equal(printNative('{"10":1,"9":2}', { indent: '  ', sortKeys: true }), null);
    assert.equal(printNative('{"a":1,"0":2}', { indent: '  ', sortKeys: false }), null);
    assert.notEqual(printNative('{"0":1,"a":2}', { indent: '  ', sortKeys: true }), null);
  });

  it('agrees with printJson on random documents', () => {
    // A small deterministic generator (xorshift), so failures reproduce.
    let seed = 0x2545f491;
    const rand = (n) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pick = (xs) => xs[rand(xs.length)];
    const keys = ['a', 'b', 'B', '0', '1', '10', 'é', '😀', '', ' ', 'a b', 'a\\nb', '\\u0041', '\\u0020', '__proto__'];
    const scalars = [
      ...['0', '-1', '1.5', '1.0', '2e3', '1E-2', '123456789012345678901', 'true', 'false', 'null'],
      ...['"x"', '"\\t"', '"\\u00e9"', '"\\/"', '" "', '"a b "', '"\\u0020"', '"a\\u0020b"'],
    ];
    const ws = () => pick(['', '', ' ', '\n  ', '\t']);
    const gen = (depth) => {
      const kind = depth > 3 ? 0 : rand(3);
      if (kind === 0) return pick(scalars);
      const n = rand(4);
      const parts = [];
      for (let i = 0; i < n; i++) {
        parts.push(kind === 1 ? ws() + gen(depth + 1) + ws() : `${ws()}"${pick(keys)}"${ws()}:${ws()}${gen(depth + 1)}`);
      }
      return kind === 1 ? `[${parts.join(',')}]` : `{${parts.join(',')}}`;
    };
    let native = 0;
    for (let i = 0; i < 5000; i++) {
      const doc = ws() + gen(0) + ws();
      const o = pick(options);
      const exact = printJson(doc, o);
      const fast = printNative(doc, o);
      if (fast !== null) {
        native++;
        assert.equal(fast, exact, `${doc} ${JSON.stringify(o)}`);
      }
      assert.equal(formatText(doc, o), `${exact}\n`);
      assert.equal(formatText(exact, o), `${exact}\n`, 'idempotent');
    }
    assert.ok(native > 300, `only ${native} documents took the fast path`);
  });
});

describe('formatText', () => {
  it('ends with one newline', () => {
    assert.equal(formatText('{"a":1}', { indent: '  ' }), '{\n  "a": 1\n}\n');
    assert.equal(formatText('[]\n\n\n', { indent: '  ' }), '[]\n');
    assert.equal(formatText('1', { indent: '' }), '1\n');
  });

  it('keeps CRLF line endings', () => {
    assert.equal(formatText('{"a":\r\n[1]}\r\n', { indent: ' ' }), '{\r\n "a": [\r\n  1\r\n ]\r\n}\r\n');
    assert.equal(formatText('{"a":1}\r\n', { indent: '' }), '{"a":1}\r\n');
  });

  it('keeps a byte-order mark', () => {
    assert.equal(formatText('\uFEFF{"a":1}', { indent: '' }), '\uFEFF{"a":1}\n');
  });

  it('is idempotent', () => {
    const once = formatText('{"b":[1,{"c":"\\u00e9"}],"a":1.0}', { indent: '\t', sortKeys: true });
    assert.equal(formatText(once, { indent: '\t', sortKeys: true }), once);
  });
});

describe('formatFile', () => {
  const options = parseOptions([]);

  it('reports unchanged files as such', () => {
    assert.equal(formatFile('a.json', '{\n  "a": [\n    1\n  ]\n}\n', options), null);
  });

  it('formats messy files', () => {
    assert.equal(
      formatFile('a.json', '{"name":"é","n":[1,2]}', options),
      '{\n  "name": "é",\n  "n": [\n    1,\n    2\n  ]\n}\n',
    );
  });

  it('keeps the byte-order mark', () => {
    assert.equal(formatFile('a.json', '\ufeff[ ]', options), '\ufeff[]\n');
  });

  it('refuses what is not JSON, saying where', () => {
    assert.throws(
      () => formatFile('a.json', '{"a":1,}', options),
      (e) => e instanceof NotText && /^a\.json: not valid JSON: unexpected "}" at line 1, column 8$/.test(e.message),
    );
  });
});

describe('selects', () => {
  it('leaves node_modules out unless the glob names it', () => {
    assert.equal(selects('**/*.json', 'a/b.json'), true);
    assert.equal(selects('**/*.json', 'node_modules/x/package.json'), false);
    assert.equal(selects('**/*.json', 'web/node_modules/x.json'), false);
    assert.equal(selects('**/*.json', 'my_node_modules/x.json'), true);
    assert.equal(selects('node_modules/x/*.json', 'node_modules/x/package.json'), true);
  });
});

describe('compareCodePoints', () => {
  it('orders by code point, not UTF-16 unit', () => {
    const keys = ['b', '😀', '\uffff', 'a', '', 'ab', 'B'];
    assert.deepEqual(keys.sort(compareCodePoints), ['', 'B', 'a', 'ab', 'b', '\uffff', '😀']);
    assert.equal(compareCodePoints('x', 'x'), 0);
  });
});
