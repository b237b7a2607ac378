//! The continuous-batching scheduler: [`Engine::generate`].
//!
//! Every request becomes a *group*: one parent sequence prefills the prompt (in chunks of
//! at most `prefill_chunk` tokens per step, so long prompts never stall decoding), then its
//! cache is copied into the `n` children (the last one takes it), each of which samples its
//! first token from the parent's last logits with its own RNG stream. Each step runs, in one
//! packed model call, one token of every decoding sequence plus prefill chunks of
//! sequences that are still prefilling. A finished sequence frees its slot at once and a
//! waiting one takes it.
//!
//! Memory: the scheduler accounts `tokens × kv_bytes_per_token` for every live cache
//! (running sequences and prefilled parents that still have children to spawn) and never
//! lets the total exceed `max_kv_bytes`. New work is admitted only when its whole prompt
//! fits; when decoding outgrows the budget, parents are dropped first, then the most
//! recently created sequences are preempted: their cache is freed and they are recomputed
//! from their tokens later (their RNG stream continues where it was, so their samples do
//! not change). The oldest sequence is never preempted, and every request alone fits the
//! budget (checked up front), so the engine always makes progress.

mod sched;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::force::{has_closed_box, open_braces, ForcePlan, ForceState};
use crate::params::{Completion, Event, FinishReason, Request, RequestOutput};
use crate::sampling::{raw_logprob, sample};
use crate::step::StepModel;
use crate::stop::Detokenize;
use sched::{Group, Role, Sched, Seq};

/// Scheduler limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Most sequences holding a slot (decoding or prefilling) at once.
    pub max_batch_size: usize,
    /// KV-cache budget in bytes, counted as cached tokens × bytes per token.
    pub max_kv_bytes: usize,
    /// Most prompt tokens prefilled per step (decode tokens come on top).
    pub prefill_chunk: usize,
    /// End-of-sequence ids (from the tokenizer / generation config); a completion that
    /// samples one ends with `stop` unless `ignore_eos`.
    pub eos_token_ids: Vec<u32>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_kv_bytes: 4 << 30,
            prefill_chunk: 512,
            eos_token_ids: Vec::new(),
        }
    }
}

/// Batched generation on a [`StepModel`] with a [`Detokenize`]r.
pub struct Engine<M: StepModel, D: Detokenize> {
    model: M,
    detok: D,
    cfg: EngineConfig,
    cancel: Arc<AtomicBool>,
}

impl<M: StepModel, D: Detokenize> Engine<M, D> {
    /// An engine over `model`, decoding with `detok`.
    pub fn new(model: M, detok: D, cfg: EngineConfig) -> Result<Self> {
        if cfg.max_batch_size == 0 {
            return Err(Error::Config("max_batch_size must be at least 1".into()));
        }
        if cfg.prefill_chunk == 0 {
            return Err(Error::Config("prefill_chunk must be at least 1".into()));
        }
        if cfg.max_kv_bytes < model.kv_bytes_per_token().max(1) {
            return Err(Error::Config(format!(
                "max_kv_bytes {} holds no token ({} bytes per token)",
                cfg.max_kv_bytes,
                model.kv_bytes_per_token()
            )));
        }
        Ok(Self {
            model,
            detok,
            cfg,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The flag that cancels a running [`Engine::generate`] (checked before every step).
    /// It stays set until cleared by the caller.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The detokenizer.
    pub fn detok(&self) -> &D {
        &self.detok
    }

    /// KV bytes one token costs.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.model.kv_bytes_per_token()
    }

    /// Checks a request against the model and the budget; the error names the request.
    pub fn validate(&self, req: &Request) -> Result<()> {
        let bad = |msg: String| Error::InvalidRequest {
            request_id: req.id,
            msg,
        };
        req.params.validate().map_err(bad)?;
        let ctx = self.model.max_positions();
        let v = self.model.vocab_size();
        let plen = req.prompt_ids.len();
        if plen == 0 {
            return Err(bad("the prompt is empty".into()));
        }
        if plen >= ctx {
            return Err(bad(format!(
                "the prompt has {plen} tokens; the model's context is {ctx} tokens"
            )));
        }
        if let Some(&t) = req.prompt_ids.iter().find(|&&t| t as usize >= v) {
            return Err(bad(format!("prompt token id {t} >= vocabulary size {v}")));
        }
        let (max_new, extra) = self.limits(req, &self.force_plan(req)?)?;
        let need = (plen + max_new + extra - 1) * self.model.kv_bytes_per_token();
        if need > self.cfg.max_kv_bytes {
            return Err(bad(format!(
                "prompt {plen} + {max_new} new tokens need {need} KV bytes, over the budget of {}",
                self.cfg.max_kv_bytes
            )));
        }
        Ok(())
    }

    /// Most tokens a forced answer can add to a completion under `params` (0 when off): the
    /// room a prompt needs in the context besides itself and one new token.
    pub fn force_reserve(&self, params: &crate::SamplingParams) -> Result<usize> {
        match &params.force_answer {
            None => Ok(0),
            Some(f) => Ok(ForcePlan::new(&self.detok, f)?.extra_tokens()),
        }
    }

    /// The request's forcing, tokenized (`None` when off).
    fn force_plan(&self, req: &Request) -> Result<Option<ForcePlan>> {
        req.params
            .force_answer
            .as_ref()
            .map(|f| {
                ForcePlan::new(&self.detok, f).map_err(|e| Error::InvalidRequest {
                    request_id: req.id,
                    msg: e.to_string(),
                })
            })
            .transpose()
    }

    /// The effective `max_new_tokens` (capped by the context, which also keeps room for a
    /// forced answer) and the most tokens forcing can add after it.
    fn limits(&self, req: &Request, plan: &Option<ForcePlan>) -> Result<(usize, usize)> {
        let ctx = self.model.max_positions();
        let plen = req.prompt_ids.len();
        let extra = plan.as_ref().map_or(0, ForcePlan::extra_tokens);
        if plen + extra >= ctx {
            return Err(Error::InvalidRequest {
                request_id: req.id,
                msg: format!(
                    "the prompt has {plen} tokens and a forced answer may add {extra}; \
                     the model's context is {ctx} tokens"
                ),
            });
        }
        Ok((req.params.max_new_tokens.min(ctx - plen - extra), extra))
    }

    /// Generates all completions of `requests`; `on_event` receives each finished
    /// completion as soon as it finishes and a progress report after every step. The
    /// result holds one [`RequestOutput`] per request, in request order.
    pub fn generate(
        &self,
        requests: &[Request],
        on_event: impl FnMut(Event<'_>),
    ) -> Result<Vec<RequestOutput>> {
        for r in requests {
            self.validate(r)?;
        }
        /// All requests at once, then closed.
        struct All {
            requests: Option<Vec<Request>>,
            outputs: Vec<Option<Result<RequestOutput>>>,
        }
        impl Feed for All {
            fn poll(&mut self, _idle: bool) -> Option<Vec<Request>> {
                self.requests.take()
            }
            fn is_cancelled(&mut self, _seq: usize) -> bool {
                false
            }
            fn finished(&mut self, seq: usize, output: Result<RequestOutput>) {
                self.outputs[seq] = Some(output);
            }
        }
        let mut feed = All {
            requests: Some(requests.to_vec()),
            outputs: (0..requests.len()).map(|_| None).collect(),
        };
        self.run(&mut feed, on_event)?;
        feed.outputs
            .into_iter()
            .map(|o| o.expect("every request finished"))
            .collect()
    }

    /// Serves requests as they arrive from `feed` until it closes and everything admitted
    /// is finished. New requests join the running batch at the next step (continuous
    /// batching across calls); a request the feed reports cancelled is dropped at the next
    /// step, its KV cache freed, also in the middle of its generation. A request that fails
    /// [`Engine::validate`] is answered with its error at once. An `Err` return (model or
    /// sampling failure, [`Engine::cancel_flag`]) abandons every admitted request: the
    /// caller answers them.
    pub fn run<F: Feed>(&self, feed: &mut F, mut on_event: impl FnMut(Event<'_>)) -> Result<()> {
        let mut s = Sched::new(self);
        loop {
            s.intake(feed);
            if s.groups.0.is_empty() {
                if s.open {
                    continue;
                }
                break;
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            s.spawn_children(&mut on_event)?;
            s.admit();
            if s.running.is_empty() {
                if s.groups.0.len() == s.complete.len() {
                    // The last children finished on their first token.
                    continue;
                }
                // Everything left waits on memory that nothing running will free: drop the
                // held parents (they are recomputed) so the queue can move.
                if !s.drop_one_parent() {
                    return Err(Error::Config(
                        "scheduler stalled: nothing runs and nothing can be admitted".into(),
                    ));
                }
                continue;
            }
            let chunks = s.plan_step()?;
            s.step(&chunks, &mut on_event)?;
        }
        Ok(())
    }

    fn cache_len(&self, s: &Seq<M::Cache>) -> usize {
        s.cache.as_ref().map_or(0, |c| self.model.cache_len(c))
    }

    /// Samples the next token of child `s` from `row`; returns its completion if it ended.
    fn sample_into(
        &self,
        s: &mut Seq<M::Cache>,
        row: &[f32],
        g: &Group<M::Cache>,
    ) -> Result<Option<Completion>> {
        let Role::Child(st) = &mut s.role else {
            return Ok(None);
        };
        if st.force.is_some() {
            return self.force_step(s, row, g);
        }
        let p = &g.req.params;
        let tok = sample(row, p, &mut st.rng).ok_or(Error::NanLogits {
            request_id: g.req.id,
            index: st.index,
        })?;
        if p.logprobs {
            st.logprobs.push(raw_logprob(row, tok));
        }
        s.tokens.push(tok);
        let plen = g.req.prompt_ids.len();
        let gen = &s.tokens[plen..];
        let mut reason = None;
        let mut stop_hit = None;
        if g.stop_ids.contains(&tok) {
            reason = Some(FinishReason::Stop);
        } else if !p.stop.is_empty() {
            if let Some((at, si)) = st.stop.push(&self.detok, gen, &p.stop)? {
                reason = Some(FinishReason::Stop);
                stop_hit = Some((at, si));
            }
        }
        if reason.is_none() && gen.len() >= g.max_new {
            reason = Some(FinishReason::Length);
        }
        let Some(finish_reason) = reason else {
            return Ok(None);
        };
        let text = match stop_hit {
            Some((at, _)) => st.stop.text[..at].to_string(),
            None => self.detok.decode(gen, true)?,
        };
        if let Some(plan) = &g.force {
            if stop_hit.is_none() && !has_closed_box(&text) {
                // Forced answer: the cue replaces a final EOS / stop id, or follows the
                // last token of a response cut at the limit (which is fed first).
                let on_stop_id = finish_reason == FinishReason::Stop;
                if on_stop_id {
                    s.tokens.pop();
                    if p.logprobs {
                        st.logprobs.pop();
                    }
                }
                st.force = Some(ForceState::start(
                    plan,
                    s.tokens.len() - plen,
                    finish_reason,
                ));
                return if on_stop_id {
                    self.force_step(s, row, g)
                } else {
                    Ok(None)
                };
            }
        }
        Ok(Some(Completion {
            request_id: g.req.id,
            index: st.index,
            token_ids: gen.to_vec(),
            text,
            finish_reason,
            stop_string: stop_hit.map(|(_, si)| p.stop[si].clone()),
            logprobs: p.logprobs.then(|| std::mem::take(&mut st.logprobs)),
            forced: Vec::new(),
        }))
    }

    /// One token of the forced-answer phase of child `s` at the position `row` predicts: the
    /// next forced token if any is queued, else the model's next answer token. Returns the
    /// completion once the cue's box is closed.
    fn force_step(
        &self,
        s: &mut Seq<M::Cache>,
        row: &[f32],
        g: &Group<M::Cache>,
    ) -> Result<Option<Completion>> {
        let Role::Child(st) = &mut s.role else {
            return Ok(None);
        };
        let (Some(fs), Some(plan)) = (st.force.as_mut(), g.force.as_ref()) else {
            return Ok(None);
        };
        let p = &g.req.params;
        let plen = g.req.prompt_ids.len();
        let from = plen + fs.cue_at;
        let mut tok = fs.queue.pop_front();
        if tok.is_none() {
            let t = sample(row, p, &mut st.rng).ok_or(Error::NanLogits {
                request_id: g.req.id,
                index: st.index,
            })?;
            if g.stop_ids.contains(&t) {
                // The model ended inside the box: close it for the model, here.
                let depth = open_braces(&self.detok.decode(&s.tokens[from..], true)?);
                fs.close(plan, depth);
                tok = fs.queue.pop_front();
            } else {
                if p.logprobs {
                    st.logprobs.push(raw_logprob(row, t));
                }
                s.tokens.push(t);
                fs.forced.push(false);
                fs.answered += 1;
                let depth = open_braces(&self.detok.decode(&s.tokens[from..], true)?);
                if depth > 0 {
                    if fs.answered >= plan.max_tokens {
                        // Out of answer budget: the closing braces follow, forced.
                        fs.close(plan, depth);
                    }
                    return Ok(None);
                }
            }
        }
        if let Some(t) = tok {
            if p.logprobs {
                st.logprobs.push(raw_logprob(row, t));
            }
            s.tokens.push(t);
            fs.forced.push(true);
            if !(fs.closing && fs.queue.is_empty()) {
                return Ok(None);
            }
        }
        let gen = &s.tokens[plen..];
        Ok(Some(Completion {
            request_id: g.req.id,
            index: st.index,
            token_ids: gen.to_vec(),
            text: self.detok.decode(gen, true)?,
            finish_reason: fs.reason,
            stop_string: None,
            logprobs: p.logprobs.then(|| std::mem::take(&mut st.logprobs)),
            forced: std::mem::take(&mut fs.forced),
        }))
    }
}

/// Where [`Engine::run`] gets its requests and sends its results.
///
/// Requests are numbered by arrival: the `k`-th request returned by [`Feed::poll`] over the
/// whole run (0-based) is `seq = k` in [`Feed::is_cancelled`] and [`Feed::finished`].
pub trait Feed {
    /// New requests, called before every step. `idle` is true when nothing is admitted:
    /// the call may then block until something arrives. `None` closes the feed: the run
    /// ends once the admitted requests are finished.
    fn poll(&mut self, idle: bool) -> Option<Vec<Request>>;
    /// Whether request `seq` is no longer wanted (checked before every step).
    fn is_cancelled(&mut self, seq: usize) -> bool;
    /// Request `seq` finished (all its completions), or was refused by
    /// [`Engine::validate`].
    fn finished(&mut self, seq: usize, output: Result<RequestOutput>);
}
