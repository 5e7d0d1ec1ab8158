// Unit tests of the pure logic: `node --test` in this folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ParamError, outcomeProblem, parseMarkers, splitGlobs, upperCaseMarkers } from './markers.js';

test('markers in another case are upper-cased', () => {
  const defaults = parseMarkers(undefined);
  const text = '// todo: parse\n# Fixme: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n';
  assert.equal(
    upperCaseMarkers(text, defaults),
    '// TODO: parse\n# FIXME: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n',
  );
  assert.equal(upperCaseMarkers('TODO: x\n', defaults), null);
  assert.equal(upperCaseMarkers('é todo: ü', defaults), 'é TODO: ü');
});

test('params are checked', () => {
  assert.deepEqual(parseMarkers('note, hack'), ['NOTE', 'HACK']);
  assert.throws(() => parseMarkers('to-do'), (e) => e instanceof ParamError && /to-do/.test(e.message));
  assert.throws(() => parseMarkers(' , '), ParamError);
  assert.deepEqual(splitGlobs('*.md, src/**'), ['*.md', 'src/**']);
  assert.deepEqual(splitGlobs(undefined), ['**/*']);
});

test('a string given as contents is refused, naming the field', () => {
  const outcome = { changes: [{ tag: 'write', val: { path: 'a.txt', contents: 'text' } }], summary: 's' };
  assert.equal(
    outcomeProblem('x', outcome),
    'step `x`: change `a.txt`: `contents` must be a Uint8Array (got a string); use new TextEncoder().encode(text)',
  );
  outcome.changes[0].val.contents = new TextEncoder().encode('text');
  assert.equal(outcomeProblem('x', outcome), null);
});
