// A stage is small and named after what it does. It either returns (continue) or throws a TiergateError,
// which ends the request with that catalogue error as a local reply.
import type { RequestState } from './request-state.js';

export interface Stage {
  readonly name: string;
  /**
   * What an unexpected (non-catalogue) error in this stage means: 'fail' ends the request per the transport's
   * failure rule; 'skip' logs, counts and carries on without the stage (for optional work such as caches).
   */
  readonly onError: 'fail' | 'skip';
  run(state: RequestState): void | Promise<void>;
}
