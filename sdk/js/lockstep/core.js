// The part of the lockstep SDK that never calls the host: params, errors,
// changes and the outcome check. It imports nothing from `lockstep:plugin/...`,
// so modules built on it run under plain Node (`node --test`). `sdk.js`
// re-exports all of it.

/**
 * A failure to return from an export as a `plugin-error`. Throw one of the
 * subclasses; the bindings return the thrown value's `payload` as the
 * export's error.
 */
export class PluginFailure extends Error {
  /**
   * @param {'invalid-input' | 'retryable' | 'permanent' | 'lock'} tag
   * @param {string | object} val the message, or the `lock-error` for `lock`
   */
  constructor(tag, val) {
    super(typeof val === 'string' ? val : `${tag}: ${JSON.stringify(val, bigints)}`);
    this.name = new.target.name;
    this.payload = { tag, val };
  }
}

/** The action's or the step's params are wrong; retrying will not help. */
export class InvalidInput extends PluginFailure {
  /** @param {string} message */
  constructor(message) {
    super('invalid-input', message);
  }
}

/** A transient failure: the user may retry the phase. */
export class Retryable extends PluginFailure {
  /** @param {string} message */
  constructor(message) {
    super('retryable', message);
  }
}

/** A failure that retrying will not fix. */
export class Permanent extends PluginFailure {
  /** @param {string} message */
  constructor(message) {
    super('permanent', message);
  }
}

/**
 * A lock operation failed; `error` is the host's `lock-error`, returned
 * unchanged (for a conflict the user is told who holds the lease).
 */
export class LockFailed extends PluginFailure {
  /** @param {object} error the `lock-error`: `{ tag, val }` */
  constructor(error) {
    super('lock', error);
    this.error = error;
  }
}

/**
 * `readText` found a file that cannot be edited as text: not UTF-8, or over
 * the host's read cap (then `tooLarge` is true). The message names the file
 * and says which. A
 * strategist usually logs it and skips the file; thrown out of an export it
 * becomes `permanent`.
 */
export class NotText extends Error {
  /**
   * @param {string} message
   * @param {boolean} [tooLarge] whether the file is over the read cap
   */
  constructor(message, tooLarge = false) {
    super(message);
    this.tooLarge = tooLarge;
  }
}

/** JSON.stringify replacer for u64 fields (BigInts). */
export function bigints(_key, value) {
  return typeof value === 'bigint' ? Number(value) : value;
}

/**
 * The params of an action or a step (`[key, value]` pairs), read with
 * defaults. Every refusal throws `InvalidInput` naming the param.
 *
 *     const params = new Params(action.params);
 *     const globs = params.list('globs', '**\/*');
 *     const sortKeys = params.flag('sort_keys', false);
 */
export class Params {
  /** @param {Array<[string, string]>} params */
  constructor(params) {
    this.params = params;
  }

  /** The value of `key` (the first, if repeated), else `fallback`. */
  get(key, fallback = undefined) {
    const found = this.params.find(([k]) => k === key);
    return found === undefined ? fallback : found[1];
  }

  /** The value of `key`; absent or blank throws `InvalidInput`. */
  required(key) {
    const value = this.get(key);
    if (value === undefined || value.trim() === '') {
      throw new InvalidInput(`param \`${key}\` is required`);
    }
    return value;
  }

  /**
   * `key` as "true" or "false" (in any case, blanks around ignored),
   * `fallback` when absent or blank.
   */
  flag(key, fallback) {
    const value = this.get(key);
    const word = value === undefined ? '' : value.trim().toLowerCase();
    if (word === '') return fallback;
    if (word === 'true') return true;
    if (word === 'false') return false;
    throw new InvalidInput(`param \`${key}\` must be "true" or "false", not ${JSON.stringify(value)}`);
  }

  /** `key` as a whole number (0 or more), `fallback` when absent. */
  number(key, fallback) {
    const value = this.get(key);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value.trim())) {
      throw new InvalidInput(`param \`${key}\` must be a whole number, not ${JSON.stringify(value)}`);
    }
    return Number(value.trim());
  }

  /**
   * `key` as a comma-separated list (items trimmed, empty ones left out);
   * `fallback` is comma-separated too.
   */
  list(key, fallback) {
    return this.get(key, fallback)
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  /**
   * The params named in `keys` that are present, in their order here: what
   * a strategist copies from the action into each step.
   */
  pick(...keys) {
    return this.params.filter(([k]) => keys.includes(k)).map(([k, v]) => [k, v]);
  }
}

/** A change that replaces (or creates) `path` with `bytes` (a Uint8Array). */
export function writeBytes(path, bytes) {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`writeBytes(${JSON.stringify(path)}): bytes must be a Uint8Array (got ${kindOf(bytes)})`);
  }
  return { tag: 'write', val: { path, contents: bytes } };
}

/** A change that replaces (or creates) `path` with `text`, as UTF-8. */
export function writeText(path, text) {
  if (typeof text !== 'string') {
    throw new TypeError(`writeText(${JSON.stringify(path)}): text must be a string (got ${kindOf(text)})`);
  }
  return writeBytes(path, new TextEncoder().encode(text));
}

/** A change that deletes `path`. */
export function deleteFile(path) {
  return { tag: 'delete', val: path };
}

/** An outcome that changes nothing: the step's work was done already. */
export function unchanged(summary) {
  return { changes: [], summary };
}

/** `count(1, 'file', 'files')` is "1 file", `count(2, …)` "2 files". */
export function count(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** How a value is described in a message: `a string`, `null`, `an Array`. */
export function kindOf(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return 'a string';
  if (typeof value !== 'object') return `a ${typeof value}`;
  const name = value.constructor && value.constructor.name;
  return name ? `${/^[AEIO]/.test(name) ? 'an' : 'a'} ${name}` : 'an object';
}

/**
 * What is wrong with the outcome `execute` returned for step `stepId`, or
 * null. The component bindings do not check types: a string given where
 * the WIT type is `list<u8>` is lowered as zero bytes, which would silently
 * empty the file. `executor()` in sdk.js refuses such an outcome with this
 * message, naming the field.
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
