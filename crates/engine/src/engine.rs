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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::{Index, IndexMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::force::{has_closed_box, open_braces, ForcePlan, ForceState};
use crate::params::{Completion, Event, FinishReason, Progress, Request, RequestOutput};
use crate::sampling::{raw_logprob, sample, SeqRng};
use crate::step::{StepItem, StepModel};
use crate::stop::{Detokenize, StopState};

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

/// What a sequence is.
enum Role {
    /// Prefills the group's prompt; its cache seeds the children.
    Parent,
    /// Completion `index` of the group.
    Child(Box<ChildState>),
}

struct ChildState {
    index: usize,
    rng: SeqRng,
    stop: StopState,
    logprobs: Vec<f32>,
    /// The forced-answer phase, once started.
    force: Option<ForceState>,
}

struct Seq<C> {
    group: usize,
    role: Role,
    /// Prompt, then generated tokens.
    tokens: Vec<u32>,
    /// `None` while waiting (not admitted, or preempted).
    cache: Option<C>,
    /// Creation order; larger = younger = preempted first.
    order: u64,
}

struct Group<C> {
    req: Request,
    /// Effective `max_new_tokens` (capped by the context).
    max_new: usize,
    /// Ids that end a completion with `stop`.
    stop_ids: Vec<u32>,
    /// The request's forced answers, tokenized.
    force: Option<ForcePlan>,
    /// Children created so far.
    spawned: usize,
    /// The prefilled prompt cache and its last logits, while children remain to spawn.
    ready: Option<(C, Vec<f32>)>,
    completions: Vec<Option<Completion>>,
    done: usize,
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
        let started = Instant::now();
        let bpt = self.model.kv_bytes_per_token();
        let budget = self.cfg.max_kv_bytes;
        let max_bs = self.cfg.max_batch_size;
        let vocab = self.model.vocab_size();

        let mut groups: Groups<M::Cache> = Groups::default();
        let mut progress = Progress::default();
        let mut next_order = 0u64;
        // Arrival index of the next request from the feed (= its group key).
        let mut next_seq = 0usize;
        // Groups not admitted yet, in arrival order.
        let mut pending: VecDeque<usize> = VecDeque::new();
        let mut waiting: VecDeque<Seq<M::Cache>> = VecDeque::new();
        let mut running: Vec<Seq<M::Cache>> = Vec::new();
        // Groups holding a prefilled prompt cache, oldest first.
        let mut ready: BTreeSet<usize> = BTreeSet::new();
        // Groups whose completions are all finished, to hand to the feed.
        let mut complete: Vec<usize> = Vec::new();
        let mut open = true;

        loop {
            // --- Intake: finished groups out, new requests in, cancelled ones dropped --
            for gi in complete.drain(..) {
                let g = groups.0.remove(&gi).expect("complete groups exist");
                feed.finished(gi, Ok(output(g)));
            }
            if open {
                match feed.poll(groups.0.is_empty()) {
                    None => open = false,
                    Some(new) => {
                        for r in new {
                            let seq = next_seq;
                            next_seq += 1;
                            let checked = self.validate(&r).and_then(|_| {
                                let plan = self.force_plan(&r)?;
                                Ok((self.limits(&r, &plan)?.0, plan))
                            });
                            let (max_new, force) = match checked {
                                Ok(x) => x,
                                Err(e) => {
                                    feed.finished(seq, Err(e));
                                    continue;
                                }
                            };
                            let mut stop_ids = r.params.stop_token_ids.clone();
                            if !r.params.ignore_eos {
                                stop_ids.extend(&self.cfg.eos_token_ids);
                            }
                            progress.requests_total += 1;
                            progress.samples_total += r.params.n;
                            groups.0.insert(
                                seq,
                                Group {
                                    max_new,
                                    stop_ids,
                                    force,
                                    spawned: 0,
                                    ready: None,
                                    completions: vec![None; r.params.n],
                                    done: 0,
                                    req: r,
                                },
                            );
                            pending.push_back(seq);
                        }
                    }
                }
            }
            let cancelled: Vec<usize> = groups
                .0
                .keys()
                .copied()
                .filter(|&gi| feed.is_cancelled(gi))
                .collect();
            for gi in cancelled {
                let g = groups.0.remove(&gi).expect("listed above");
                ready.remove(&gi);
                pending.retain(|&p| p != gi);
                waiting.retain(|s| s.group != gi);
                running.retain(|s| s.group != gi);
                progress.requests_total -= 1;
                progress.samples_total -= g.req.params.n;
                progress.samples_done -= g.done;
                tracing::debug!(request = g.req.id, "request cancelled");
            }
            if groups.0.is_empty() {
                if open {
                    continue;
                }
                break;
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            // --- Admission -------------------------------------------------------------
            // (a) Spawn children of prefilled groups (oldest group first).
            let ready_now: Vec<usize> = ready.iter().copied().collect();
            for gi in ready_now {
                loop {
                    let g = &groups[gi];
                    if g.ready.is_none() || g.spawned >= g.req.params.n || running.len() >= max_bs {
                        break;
                    }
                    let plen = g.req.prompt_ids.len();
                    let last = g.spawned + 1 == g.req.params.n;
                    let held = held_bytes(&self.model, &running, &groups, &ready, bpt);
                    let reserve = decode_count(&running) * bpt;
                    let extra = if last { 0 } else { plen * bpt };
                    // Copy the prompt cache when it fits; with nothing running and no room
                    // for a copy, hand the cache over and recompute the prompt later.
                    let take = if held + extra + reserve <= budget {
                        last
                    } else if running.is_empty() && held <= budget {
                        true
                    } else {
                        break;
                    };
                    let g = &mut groups[gi];
                    let index = g.spawned;
                    g.spawned += 1;
                    let (cache, logits) = if take {
                        ready.remove(&gi);
                        g.ready.take().expect("checked above")
                    } else {
                        let (c, l) = g.ready.as_ref().expect("checked above");
                        (c.clone(), l.clone())
                    };
                    if take && !last {
                        progress.preemptions += 1;
                        waiting.push_front(Seq {
                            group: gi,
                            role: Role::Parent,
                            tokens: g.req.prompt_ids.clone(),
                            cache: None,
                            order: 0,
                        });
                    }
                    let mut seq = Seq {
                        group: gi,
                        role: Role::Child(Box::new(ChildState {
                            index,
                            rng: SeqRng::new(g.req.params.seed, index),
                            stop: StopState::default(),
                            logprobs: Vec::new(),
                            force: None,
                        })),
                        tokens: g.req.prompt_ids.clone(),
                        cache: Some(cache),
                        order: next_order,
                    };
                    next_order += 1;
                    let fin = self.sample_into(&mut seq, &logits, g)?;
                    progress.generated_tokens += 1;
                    match fin {
                        Some(c) => {
                            if finish(&mut groups[gi], c, &mut progress, &mut on_event) {
                                complete.push(gi);
                            }
                        }
                        None => running.push(seq),
                    }
                }
            }
            // (b) Admit waiting sequences (preempted ones first), then new requests.
            loop {
                if running.len() >= max_bs {
                    break;
                }
                if waiting.is_empty() {
                    let Some(gi) = pending.pop_front() else {
                        break;
                    };
                    waiting.push_back(Seq {
                        group: gi,
                        role: Role::Parent,
                        tokens: groups[gi].req.prompt_ids.clone(),
                        cache: None,
                        order: next_order,
                    });
                    next_order += 1;
                }
                let cand = waiting.front().expect("not empty");
                let held = held_bytes(&self.model, &running, &groups, &ready, bpt);
                let reserve = decode_count(&running) * bpt;
                if held + reserve + cand.tokens.len() * bpt > budget {
                    break;
                }
                let mut s = waiting.pop_front().expect("not empty");
                s.cache = Some(self.model.new_cache());
                running.push(s);
            }
            if running.is_empty() {
                if groups.0.len() == complete.len() {
                    // The last children finished on their first token.
                    continue;
                }
                // Everything left waits on memory that nothing running will free: drop the
                // held parents (they are recomputed) so the queue can move.
                if !drop_one_parent(&mut groups, &mut ready, &mut waiting) {
                    return Err(Error::Config(
                        "scheduler stalled: nothing runs and nothing can be admitted".into(),
                    ));
                }
                continue;
            }
            // --- Plan the step --------------------------------------------------------
            running.sort_by_key(|s| s.order);
            let chunks = loop {
                let held = held_bytes(&self.model, &running, &groups, &ready, bpt);
                let mut room = budget.saturating_sub(held) / bpt.max(1);
                let mut prefill_left = self.cfg.prefill_chunk;
                let mut chunks = vec![0usize; running.len()];
                let mut ok = true;
                // Decodes first: one token each, always.
                for (k, s) in running.iter().enumerate() {
                    let pending = s.tokens.len() - self.cache_len(s);
                    if pending == 1 && is_child(s) {
                        if room == 0 {
                            ok = false;
                            break;
                        }
                        chunks[k] = 1;
                        room -= 1;
                    }
                }
                if ok {
                    for (k, s) in running.iter().enumerate() {
                        if chunks[k] > 0 {
                            continue;
                        }
                        let pending = s.tokens.len() - self.cache_len(s);
                        let c = pending.min(prefill_left).min(room);
                        chunks[k] = c;
                        prefill_left -= c;
                        room -= c;
                    }
                    if chunks.iter().any(|&c| c > 0) {
                        break chunks;
                    }
                }
                // Out of memory for this step: free something and plan again.
                if drop_one_parent(&mut groups, &mut ready, &mut waiting) {
                    continue;
                }
                if running.len() <= 1 {
                    return Err(Error::Config(format!(
                        "KV budget of {budget} bytes cannot hold the oldest sequence"
                    )));
                }
                let mut victim = running.pop().expect("len > 1");
                victim.cache = None;
                progress.preemptions += 1;
                tracing::debug!(group = victim.group, "preempted a sequence (KV budget)");
                waiting.push_front(victim);
            };
            // --- Run the step ---------------------------------------------------------
            let step_kv = held_bytes(&self.model, &running, &groups, &ready, bpt)
                + chunks.iter().sum::<usize>() * bpt;
            progress.peak_kv_bytes = progress.peak_kv_bytes.max(step_kv);
            let mut idx = Vec::new();
            let mut items = Vec::new();
            for (k, s) in running.iter_mut().enumerate() {
                if chunks[k] == 0 {
                    continue;
                }
                let from = s.cache.as_ref().map_or(0, |c| self.model.cache_len(c));
                if !is_child(s) || from + 1 < s.tokens.len() {
                    progress.prompt_tokens += chunks[k];
                }
                idx.push(k);
                items.push(StepItem {
                    tokens: &s.tokens[from..from + chunks[k]],
                    cache: s.cache.as_mut().expect("running sequences hold a cache"),
                });
            }
            let logits = self.model.step(&mut items)?;
            drop(items);
            if logits.len() != idx.len() * vocab {
                return Err(Error::Config(format!(
                    "model step returned {} logits for {} rows of {vocab}",
                    logits.len(),
                    idx.len()
                )));
            }
            progress.steps += 1;
            progress.running = idx.len();
            // --- Sample --------------------------------------------------------------
            // Sequences whose pending tokens are all in the cache now get their next token.
            let mut rows: Vec<Option<&[f32]>> = vec![None; running.len()];
            for (r, &k) in idx.iter().enumerate() {
                let s = &running[k];
                if self.cache_len(s) == s.tokens.len() {
                    rows[k] = Some(&logits[r * vocab..(r + 1) * vocab]);
                }
            }
            // Parents that finished prefilling become ready.
            let mut k = 0;
            let mut parent_rows = Vec::new();
            while k < running.len() {
                if matches!(running[k].role, Role::Parent) && rows[k].is_some() {
                    let row = rows.remove(k).expect("checked").to_vec();
                    let s = running.remove(k);
                    parent_rows.push((s, row));
                } else {
                    k += 1;
                }
            }
            for (s, row) in parent_rows {
                groups[s.group].ready = Some((s.cache.expect("ran"), row));
                ready.insert(s.group);
            }
            let outcomes: Vec<Result<Option<Completion>>> = running
                .par_iter_mut()
                .zip(rows.par_iter())
                .map(|(s, row)| match row {
                    Some(row) => self.sample_into(s, row, &groups[s.group]),
                    None => Ok(None),
                })
                .collect();
            let sampled = rows.iter().filter(|r| r.is_some()).count();
            progress.generated_tokens += sampled;
            let mut finished = vec![false; running.len()];
            for (k, o) in outcomes.into_iter().enumerate() {
                if let Some(c) = o? {
                    finished[k] = true;
                    let gi = running[k].group;
                    if finish(&mut groups[gi], c, &mut progress, &mut on_event) {
                        complete.push(gi);
                    }
                }
            }
            let mut k = 0;
            running.retain(|_| {
                k += 1;
                !finished[k - 1]
            });
            progress.elapsed_s = started.elapsed().as_secs_f64();
            on_event(Event::Progress(progress));
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

fn is_child<C>(s: &Seq<C>) -> bool {
    matches!(s.role, Role::Child(_))
}

/// Children whose only pending token is their last sampled one.
fn decode_count<C>(running: &[Seq<C>]) -> usize {
    running.iter().filter(|s| is_child(s)).count()
}

/// KV bytes held by running sequences and prefilled parents.
fn held_bytes<M: StepModel>(
    model: &M,
    running: &[Seq<M::Cache>],
    groups: &Groups<M::Cache>,
    ready: &BTreeSet<usize>,
    bpt: usize,
) -> usize {
    let r: usize = running
        .iter()
        .map(|s| s.cache.as_ref().map_or(0, |c| model.cache_len(c)))
        .sum();
    let p: usize = ready
        .iter()
        .filter_map(|&g| groups[g].ready.as_ref().map(|(c, _)| model.cache_len(c)))
        .sum();
    (r + p) * bpt
}

/// Drops the youngest prefilled parent, queueing its prompt for recomputation.
fn drop_one_parent<C>(
    groups: &mut Groups<C>,
    ready: &mut BTreeSet<usize>,
    waiting: &mut VecDeque<Seq<C>>,
) -> bool {
    let Some(gi) = ready.pop_last() else {
        return false;
    };
    groups[gi].ready = None;
    waiting.push_front(Seq {
        group: gi,
        role: Role::Parent,
        tokens: groups[gi].req.prompt_ids.clone(),
        cache: None,
        order: 0,
    });
    true
}

/// Records a finished completion and streams it; true when it was the group's last.
fn finish<C>(
    g: &mut Group<C>,
    c: Completion,
    progress: &mut Progress,
    on_event: &mut impl FnMut(Event<'_>),
) -> bool {
    on_event(Event::Completion(&c));
    let index = c.index;
    g.completions[index] = Some(c);
    g.done += 1;
    progress.samples_done += 1;
    if g.done == g.req.params.n {
        progress.requests_done += 1;
        return true;
    }
    false
}

/// The result of a finished group.
fn output<C>(g: Group<C>) -> RequestOutput {
    RequestOutput {
        request_id: g.req.id,
        prompt_len: g.req.prompt_ids.len(),
        completions: g
            .completions
            .into_iter()
            .map(|c| c.expect("every completion finished"))
            .collect(),
    }
}

/// The live groups by arrival index.
struct Groups<C>(HashMap<usize, Group<C>>);

impl<C> Default for Groups<C> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<C> Index<usize> for Groups<C> {
    type Output = Group<C>;
    fn index(&self, gi: usize) -> &Group<C> {
        &self.0[&gi]
    }
}

impl<C> IndexMut<usize> for Groups<C> {
    fn index_mut(&mut self, gi: usize) -> &mut Group<C> {
        self.0.get_mut(&gi).expect("live group")
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
