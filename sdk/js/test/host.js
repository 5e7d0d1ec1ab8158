// A fake of the component's `lockstep:plugin/...` imports for `node --test`:
// `register.js` maps every import to this module, whose exports the tests
// drive through `host`.

/** What the fake host holds, and what it saw. */
export const host = {
  files: new Map(),
  lines: [],
  reports: [],
  dropped: [],
  lose: false,
  reset() {
    this.files = new Map();
    this.lines = [];
    this.reports = [];
    this.dropped = [];
    this.lose = false;
  },
};

/** An import returning `err(payload)` throws an Error carrying it. */
function fail(payload) {
  const e = new Error(`${payload.tag}`);
  e.payload = payload;
  return e;
}

export const CONFLICT = {
  resource: 'project:p/res:busy',
  owner: 'sess-1',
  operation: 'migrate',
  holder: 'host:42',
  acquiredAt: 1n,
  expiresAt: 2n,
};

export function list(glob) {
  if (glob.includes('[')) throw fail({ tag: 'invalid', val: 'bad glob' });
  if (glob === 'huge') throw fail({ tag: 'too-large', val: 100000n });
  const ext = glob.slice(glob.lastIndexOf('.'));
  return [...host.files.keys()].filter((p) => p.endsWith(ext)).sort();
}

export function read(path) {
  if (path === 'big') throw fail({ tag: 'too-large', val: 8n });
  if (!host.files.has(path)) throw fail({ tag: 'not-found', val: path });
  return host.files.get(path);
}

export function log(level, message) {
  host.lines.push([level, message]);
}

export function report(done, total, message) {
  host.reports.push([done, total, message]);
}

export function acquire(name, ttlMs) {
  if (typeof ttlMs !== 'bigint') throw new TypeError('ttl must be a BigInt');
  if (name === 'busy') throw fail({ tag: 'conflict', val: CONFLICT });
  return {
    name: () => `project:p/res:${name}`,
    token: () => 7n,
    release() {
      if (host.lose) throw fail({ tag: 'expired', val: { resource: this.name(), token: 7n } });
    },
    [Symbol.dispose ?? Symbol.for('dispose')]() {
      host.dropped.push(name);
    },
  };
}
