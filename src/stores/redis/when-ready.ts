// ioredis clients here run without an offline queue (a command while disconnected fails at once). While a
// connection is being (re)established, callers wait for it this long at most, then fail and apply their own
// failure rule (the ledger spools; budgets use the breaker and onStoreFailure).
import type { Cluster, Redis } from 'ioredis';
import { setDeadline } from '../../deadline-timer.js';
import { connectionState } from './connect.js';

export function whenReady(redis: Redis | Cluster, waitMs: number, what: string): Promise<void> | void {
  const status = redis.status;
  if (status === 'ready') return;
  if (status === 'end') return Promise.reject(new Error(`${what}: connection closed for good`));
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      cancel();
      redis.off('ready', onReady);
      if (err) reject(err);
      else resolve();
    };
    const onReady = () => done();
    const cancel = setDeadline(waitMs, () => done(new Error(`${what}: not connected (${connectionState(redis)})`)));
    redis.once('ready', onReady);
  });
}
