// The plugin's pure logic. It imports nothing from `lockstep:plugin/...`
// (lockstep/core.js is the part of the SDK that never calls the host), so it
// runs under plain Node: `node --test` in this folder.

import { InvalidInput } from './lockstep/core.js';

export const DEFAULT_MARKERS = 'TODO,FIXME';
export const DEFAULT_GLOBS = '**/*';

/**
 * The `markers` param: comma-separated words of ASCII letters, returned
 * upper-cased. A bad value throws `InvalidInput`.
 */
export function parseMarkers(value) {
  const markers = [];
  for (const raw of (value ?? DEFAULT_MARKERS).split(',')) {
    const m = raw.trim();
    if (m === '') continue;
    if (!/^[A-Za-z]+$/.test(m)) {
      throw new InvalidInput(`param \`markers\`: \`${m}\` is not a word of ASCII letters`);
    }
    markers.push(m.toUpperCase());
  }
  if (markers.length === 0) throw new InvalidInput('param `markers` names no marker');
  return markers;
}

/**
 * `text` with every marker that is followed by `:`, starts a word and is not
 * upper-case already written in upper case (`todo:` and `Todo:` become
 * `TODO:`; `mastodon:` stays). `null` when nothing changes. `markers` are
 * words of ASCII letters, as `parseMarkers` returns them.
 */
export function upperCaseMarkers(text, markers) {
  // Without the `u` flag, `i` folds ASCII letters only.
  const pattern = new RegExp(`(?<![A-Za-z0-9_])(?:${markers.join('|')})(?=:)`, 'gi');
  const result = text.replace(pattern, (m) => m.toUpperCase());
  return result === text ? null : result;
}
