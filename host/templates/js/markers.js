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

/** How a value is described in a message: `a string`, `null`, `an Array`. */
function kindOf(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return 'a string';
  if (typeof value !== 'object') return `a ${typeof value}`;
  const name = value.constructor && value.constructor.name;
  return name ? `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}` : 'an object';
}

/**
 * What is wrong with the outcome `execute` returns for step `stepId`, or
 * null. The component bindings do not check types: a string given where
 * the WIT type is `list<u8>` is lowered as zero bytes, so the file would be
 * silently emptied. Checking here turns that into an error naming the field.
 */
export function outcomeProblem(stepId, outcome) {
  const at = `step \`${stepId}\``;
  if (outcome === null || typeof outcome !== 'object') {
    return `${at}: the outcome must be an object { changes, summary } (got ${kindOf(outcome)})`;
  }
  if (typeof outcome.summary !== 'string') {
    return `${at}: \`summary\` must be a string (got ${kindOf(outcome.summary)})`;
  }
  if (!Array.isArray(outcome.changes)) {
    return `${at}: \`changes\` must be an Array (got ${kindOf(outcome.changes)})`;
  }
  for (const [i, change] of outcome.changes.entries()) {
    if (change === null || typeof change !== 'object') {
      return `${at}: change ${i + 1} must be { tag, val } (got ${kindOf(change)})`;
    }
    if (change.tag === 'delete') {
      if (typeof change.val !== 'string') {
        return `${at}: change ${i + 1}: a delete's \`val\` must be the path as a string (got ${kindOf(change.val)})`;
      }
    } else if (change.tag === 'write') {
      const write = change.val;
      if (write === null || typeof write !== 'object') {
        return `${at}: change ${i + 1}: a write's \`val\` must be { path, contents } (got ${kindOf(write)})`;
      }
      if (typeof write.path !== 'string') {
        return `${at}: change ${i + 1}: \`path\` must be a string (got ${kindOf(write.path)})`;
      }
      if (!(write.contents instanceof Uint8Array)) {
        const hint = typeof write.contents === 'string' ? '; use new TextEncoder().encode(text)' : '';
        return `${at}: change \`${write.path}\`: \`contents\` must be a Uint8Array (got ${kindOf(write.contents)})${hint}`;
      }
    } else {
      return `${at}: change ${i + 1}: \`tag\` must be 'write' or 'delete' (got ${JSON.stringify(String(change.tag))})`;
    }
  }
  return null;
}
