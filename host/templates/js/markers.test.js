// Unit tests of the pure logic: `node --test` in this folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { InvalidInput } from './lockstep/core.js';
import { parseMarkers, upperCaseMarkers } from './markers.js';

test('markers in another case are upper-cased', () => {
  const defaults = parseMarkers(undefined);
  const text = '// todo: parse\n# Fixme: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n';
  assert.equal(
    upperCaseMarkers(text, defaults),
    '// TODO: parse\n# FIXME: tabs\n/* TODO: done */\nmastodon: no\ntodo no colon\n',
  );
  assert.equal(upperCaseMarkers('TODO: x\n', defaults), null);
});

test('only whole words followed by a colon change', () => {
  const defaults = parseMarkers(undefined);
  assert.equal(upperCaseMarkers('é todo: ü', defaults), 'é TODO: ü');
  assert.equal(upperCaseMarkers('mastodon: todo - fixme\n', defaults), null);
});

test('params are checked', () => {
  assert.deepEqual(parseMarkers('note, hack'), ['NOTE', 'HACK']);
  assert.throws(() => parseMarkers('to-do'), (e) => e instanceof InvalidInput && /to-do/.test(e.message));
  assert.throws(() => parseMarkers(' , '), InvalidInput);
});
