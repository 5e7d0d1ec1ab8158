// `node --import ./test/register.js --test test/`: serves every
// `lockstep:plugin/...` import from the fake host in host.js.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier.startsWith('lockstep:plugin/')) {
          return { url: ${JSON.stringify(new URL('./host.js', import.meta.url).href)}, shortCircuit: true };
        }
        return next(specifier, context);
      }
    `),
);
