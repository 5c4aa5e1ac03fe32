// Decides the tier: a configured alias (or a tier's own model id) routes directly; `auto` and any unknown
// model name are classified: by the active version, or by a canary candidate for its sticky share, with the
// shadow version (if any) evaluated beside it. A Responses API turn that keeps state on the backend is not
// classified: it goes to routing.statefulTier.
import type { Stage } from '../pipeline/stage.js';

export const classifyStage: Stage = {
  name: 'classify',
  onError: 'fail',
  run(state) {
    const rt = state.runtime;
    const llm = state.llm;
    if (!llm) throw new Error('classify before parse');
    const model = llm.model ?? 'auto';
    const direct = rt.autoModels.has(model) ? undefined : rt.modelToTier.get(model);
    if (direct !== undefined) {
      const tier = rt.tiers.get(direct);
      if (!tier) throw new Error(`alias ${model} names unknown tier ${direct}`);
      state.route = { tier, source: 'alias' };
      return;
    }
    if (llm.stateful) {
      // A Responses API turn that keeps state on its backend: one fixed tier, so the whole conversation is there.
      state.route = { tier: rt.statefulTier, source: 'stateful' };
      return;
    }
    const { decision, shadow } = rt.classifiers.classify({ tenant: state.tenant, headers: state.headers, messages: llm.messages });
    const tier = rt.tiers.get(decision.tier);
    if (!tier) throw new Error(`classifier chose unknown tier ${decision.tier}`);
    state.route = shadow ? { tier, source: 'classifier', classification: decision, shadow } : { tier, source: 'classifier', classification: decision };
  },
};
