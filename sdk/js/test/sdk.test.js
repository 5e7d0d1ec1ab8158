// Tests of the JavaScript SDK under plain Node, from `sdk/js`:
//
//     node --import ./test/register.js --test test/
//
// register.js serves the `lockstep:plugin/...` imports from the fake host in
// host.js.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { CONFLICT, host } from './host.js';
import {
  InvalidInput,
  LockFailed,
  NotText,
  Params,
  Permanent,
  Progress,
  Retryable,
  deleteFile,
  executor,
  listFiles,
  outcomeProblem,
  readText,
  readTextOrSkip,
  strategist,
  takeLease,
  withLease,
  writeBytes,
  writeText,
} from '../lockstep/sdk.js';

const utf8 = (s) => new TextEncoder().encode(s);
const logged = () => host.lines.map(([, m]) => m).join('\n');

beforeEach(() => host.reset());

describe('Params', () => {
  it('reads values with defaults', () => {
    const p = new Params([['a', '1'], ['a', '2'], ['globs', ' *.md, ,src/** ']]);
    assert.equal(p.get('a'), '1');
    assert.equal(p.get('b'), undefined);
    assert.equal(p.get('b', 'x'), 'x');
    assert.deepEqual(p.list('globs', '**/*'), ['*.md', 'src/**']);
    assert.deepEqual(p.list('other', '**/*'), ['**/*']);
    assert.equal(p.number('a', 7), 1);
    assert.equal(p.number('b', 7), 7);
    assert.deepEqual(p.pick('globs', 'b'), [['globs', ' *.md, ,src/** ']]);
  });

  it('takes flags in any case, and blank as the default', () => {
    const p = new Params([['on', ' TRUE '], ['off', 'False'], ['blank', ' ']]);
    assert.equal(p.flag('on', false), true);
    assert.equal(p.flag('off', true), false);
    assert.equal(p.flag('blank', true), true);
    assert.equal(p.flag('absent', false), false);
  });

  it('names the param and the value it refuses', () => {
    const p = new Params([['n', 'ten'], ['f', 'yes'], ['blank', '  ']]);
    for (const [call, message] of [
      [() => p.number('n', 0), 'param `n` must be a whole number, not "ten"'],
      [() => p.flag('f', false), 'param `f` must be "true" or "false", not "yes"'],
      [() => p.required('blank'), 'param `blank` is required'],
      [() => p.required('none'), 'param `none` is required'],
    ]) {
      assert.throws(call, (e) => e instanceof InvalidInput && e.message === message, message);
    }
  });
});

describe('changes and outcomes', () => {
  it('build writes of bytes and deletes', () => {
    assert.deepEqual(writeText('a', 'é'), { tag: 'write', val: { path: 'a', contents: utf8('é') } });
    assert.deepEqual(deleteFile('a'), { tag: 'delete', val: 'a' });
    assert.throws(() => writeBytes('a', 'text'), /must be a Uint8Array \(got a string\)/);
    assert.throws(() => writeText('a', utf8('x')), /must be a string \(got a Uint8Array\)/);
  });

  it('refuse a string given as contents, naming the step, the file and the field', () => {
    const outcome = { changes: [{ tag: 'write', val: { path: 'a.json', contents: '{}' } }], summary: 's' };
    assert.equal(
      outcomeProblem('file-1', outcome),
      'step `file-1`: change `a.json`: `contents` must be a Uint8Array (got a string); ' +
        'use new TextEncoder().encode(text)',
    );
    assert.equal(outcomeProblem('x', { changes: [writeText('a', ''), deleteFile('b')], summary: 's' }), null);
    assert.match(outcomeProblem('x', { changes: [{ tag: 'move' }], summary: 's' }), /`tag` must be 'write' or 'delete'/);
    assert.match(outcomeProblem('x', undefined), /must be an object \{ changes, summary \} \(got undefined\)/);
  });
});

describe('the workspace', () => {
  it('reads text, and says why a file is not text', () => {
    host.files.set('a.txt', utf8('é\n'));
    host.files.set('b.bin', new Uint8Array([0xff]));
    assert.equal(readText('a.txt'), 'é\n');
    assert.throws(() => readText('b.bin'), (e) => e instanceof NotText && e.message === 'b.bin: not UTF-8 text');
    assert.throws(
      () => readText('big'),
      (e) => e instanceof NotText && e.message === 'big: larger than the read cap of 8 bytes',
    );
    assert.throws(() => readText('gone'), (e) => e instanceof Permanent && e.message === 'gone: not found: gone');
  });

  it('skips what is not text, logging why', () => {
    host.files.set('a.txt', utf8('a'));
    host.files.set('b.bin', new Uint8Array([0xff]));
    assert.equal(readTextOrSkip('a.txt'), 'a');
    assert.equal(readTextOrSkip('b.bin'), null);
    assert.equal(readTextOrSkip('big'), null);
    assert.deepEqual(host.lines, [
      ['debug', 'skipping b.bin: not UTF-8 text'],
      ['warn', 'skipping big: larger than the read cap of 8 bytes'],
    ]);
    assert.throws(() => readTextOrSkip('gone'), Permanent);
  });

  it('lists the files of several globs once, sorted', () => {
    for (const p of ['b.md', 'a.md', 'c.rs']) host.files.set(p, utf8(''));
    assert.deepEqual(listFiles(['*.md', '**/*.md', '*.rs']), ['a.md', 'b.md', 'c.rs']);
    assert.deepEqual(listFiles(['*.md'], (_glob, path) => path !== 'a.md'), ['b.md']);
    assert.match(logged(), /\*\.md: 2 files/);
    assert.throws(() => listFiles(['x[']), (e) => e instanceof InvalidInput && e.message === 'x[: bad glob');
    assert.throws(
      () => listFiles(['huge']),
      (e) =>
        e instanceof Permanent &&
        e.message === 'huge: matches more than 100000 files, the most one list returns; use narrower globs',
    );
  });
});

describe('leases', () => {
  it('are released after the body, which returns its value', () => {
    assert.equal(
      withLease('index', 30000, (lease) => `${lease.resource} ${lease.token}`),
      'project:p/res:index 7',
    );
    assert.deepEqual(host.dropped, ['index']);
  });

  it('fail the body when lost meanwhile', () => {
    host.lose = true;
    assert.throws(
      () => withLease('index', 30000, () => 'computed'),
      (e) => e instanceof LockFailed && e.payload.tag === 'lock' && e.payload.val.tag === 'expired',
    );
    assert.deepEqual(host.dropped, ['index']);
  });

  it('are dropped when the body throws, and the error goes on', () => {
    assert.throws(() => withLease('index', 30000, () => { throw new RangeError('x'); }), RangeError);
    assert.deepEqual(host.dropped, ['index']);
    const lease = takeLease('again');
    lease.release();
    lease.release();
    assert.deepEqual(host.dropped, ['index', 'again']);
  });

  it('return a conflict unchanged, logging who holds it', () => {
    assert.throws(
      () => takeLease('busy'),
      (e) => e instanceof LockFailed && e.payload.val.tag === 'conflict' && e.payload.val.val === CONFLICT,
    );
    assert.match(logged(), /lease busy is held by sess-1 \(migrate\) on host:42/);
  });
});

describe('the exports', () => {
  const action = { name: 'a', params: [] };
  const step = { id: 'file-1', title: '', params: [], targets: [] };
  const failing = (e) => strategist(() => { throw e; }).strategize('plan', action);

  it('let plugin failures through as their plugin-error', () => {
    assert.throws(() => failing(new Retryable('later')), (e) => e.payload.tag === 'retryable');
    assert.throws(() => failing(new InvalidInput('bad')), (e) => e.payload.val === 'bad');
    assert.throws(() => failing(new NotText('a: not UTF-8 text')), (e) =>
      e.payload.tag === 'permanent' && e.payload.val === 'a: not UTF-8 text');
  });

  it('turn a bug into a permanent error with its message and stack, logged', () => {
    assert.throws(
      () => failing(new TypeError('x is undefined')),
      (e) => e.payload.tag === 'permanent' && e.payload.val.startsWith('strategize failed: TypeError: x is undefined\n'),
    );
    assert.match(logged(), /strategize failed: TypeError: x is undefined\n.*sdk\.test\.js/s);
    assert.throws(() => failing('a string'), (e) => e.payload.val === 'strategize failed: a string');
  });

  it('refuse an outcome of the wrong type instead of emptying the file', () => {
    const execute = (outcome) => executor(() => outcome).execute('plan', step);
    assert.throws(
      () => execute({ changes: [{ tag: 'write', val: { path: 'a', contents: 'text' } }], summary: 's' }),
      (e) => e.payload.tag === 'permanent' && /`contents` must be a Uint8Array \(got a string\)/.test(e.payload.val),
    );
    const good = { changes: [writeText('a', 'text')], summary: 's' };
    assert.equal(execute(good), good);
  });
});

describe('progress', () => {
  it('reports each unit as BigInts', () => {
    const p = new Progress(2);
    p.advance('a');
    p.advance('b');
    assert.deepEqual(host.reports, [[1n, 2n, 'a'], [2n, 2n, 'b']]);
  });
});
