// The plugin's pure logic. It imports nothing from `lockstep:plugin/...`, so
// it runs under plain Node: `node --test` in this folder.

export const DEFAULT_MARKERS = 'TODO,FIXME';
export const DEFAULT_GLOBS = '**/*';

/** A parameter has a value the plugin cannot use. */
export class ParamError extends Error {}

/** The value of parameter `key` (params are `[key, value]` pairs), if present. */
export function param(params, key) {
  const found = params.find(([k]) => k === key);
  return found === undefined ? undefined : found[1];
}

/**
 * The `markers` param: comma-separated words of ASCII letters, returned
 * upper-cased.
 */
export function parseMarkers(value) {
  const markers = [];
  for (const raw of (value ?? DEFAULT_MARKERS).split(',')) {
    const m = raw.trim();
    if (m === '') continue;
    if (!/^[A-Za-z]+$/.test(m)) {
      throw new ParamError(`param \`markers\`: \`${m}\` is not a word of ASCII letters`);
    }
    markers.push(m.toUpperCase());
  }
  if (markers.length === 0) throw new ParamError('param `markers` names no marker');
  return markers;
}

/** The comma-separated `globs` param. */
export function splitGlobs(value) {
  return (value ?? DEFAULT_GLOBS)
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
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

/** "1 file", "2 files". */
export function files(n) {
  return `${n} file${n === 1 ? '' : 's'}`;
}
