//! The state of one [`Engine::run`] and its phases, in the order of a step: intake (finished
//! groups out, new requests in, cancelled ones dropped), admission (children of prefilled
//! groups, then waiting sequences), planning (decode tokens and prefill chunks under the KV
//! budget, preempting when needed), and the packed model step with its sampling.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::{Index, IndexMut};
use std::time::Instant;

use rayon::prelude::*;

use super::{Engine, Feed};
use crate::error::{Error, Result};
use crate::force::{ForcePlan, ForceState};
use crate::params::{Completion, Event, Progress, Request, RequestOutput};
use crate::sampling::SeqRng;
use crate::step::{StepItem, StepModel};
use crate::stop::{Detokenize, StopState};

/// What a sequence is.
pub(super) enum Role {
    /// Prefills the group's prompt; its cache seeds the children.
    Parent,
    /// Completion `index` of the group.
    Child(Box<ChildState>),
}

pub(super) struct ChildState {
    pub(super) index: usize,
    pub(super) rng: SeqRng,
    pub(super) stop: StopState,
    pub(super) logprobs: Vec<f32>,
    /// The forced-answer phase, once started.
    pub(super) force: Option<ForceState>,
}

pub(super) struct Seq<C> {
    pub(super) group: usize,
    pub(super) role: Role,
    /// Prompt, then generated tokens.
    pub(super) tokens: Vec<u32>,
    /// `None` while waiting (not admitted, or preempted).
    pub(super) cache: Option<C>,
    /// Creation order; larger = younger = preempted first.
    pub(super) order: u64,
}

pub(super) struct Group<C> {
    pub(super) req: Request,
    /// Effective `max_new_tokens` (capped by the context).
    pub(super) max_new: usize,
    /// Ids that end a completion with `stop`.
    pub(super) stop_ids: Vec<u32>,
    /// The request's forced answers, tokenized.
    pub(super) force: Option<ForcePlan>,
    /// Children created so far.
    spawned: usize,
    /// The prefilled prompt cache and its last logits, while children remain to spawn.
    ready: Option<(C, Vec<f32>)>,
    completions: Vec<Option<Completion>>,
    done: usize,
}

/// The scheduler's state during one [`Engine::run`].
pub(super) struct Sched<'e, M: StepModel, D: Detokenize> {
    eng: &'e Engine<M, D>,
    started: Instant,
    /// KV bytes per token, the budget, the batch limit and the vocabulary size.
    bpt: usize,
    budget: usize,
    max_bs: usize,
    vocab: usize,
    pub(super) groups: Groups<M::Cache>,
    progress: Progress,
    next_order: u64,
    /// Arrival index of the next request from the feed (= its group key).
    next_seq: usize,
    /// Groups not admitted yet, in arrival order.
    pending: VecDeque<usize>,
    waiting: VecDeque<Seq<M::Cache>>,
    pub(super) running: Vec<Seq<M::Cache>>,
    /// Groups holding a prefilled prompt cache, oldest first.
    ready: BTreeSet<usize>,
    /// Groups whose completions are all finished, to hand to the feed.
    pub(super) complete: Vec<usize>,
    /// Whether the feed may still send requests.
    pub(super) open: bool,
}

impl<'e, M: StepModel, D: Detokenize> Sched<'e, M, D> {
    pub(super) fn new(eng: &'e Engine<M, D>) -> Self {
        Self {
            eng,
            started: Instant::now(),
            bpt: eng.model.kv_bytes_per_token(),
            budget: eng.cfg.max_kv_bytes,
            max_bs: eng.cfg.max_batch_size,
            vocab: eng.model.vocab_size(),
            groups: Groups::default(),
            progress: Progress::default(),
            next_order: 0,
            next_seq: 0,
            pending: VecDeque::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            ready: BTreeSet::new(),
            complete: Vec::new(),
            open: true,
        }
    }

    /// Intake: finished groups out, new requests in, cancelled ones dropped.
    pub(super) fn intake<F: Feed>(&mut self, feed: &mut F) {
        for gi in self.complete.drain(..) {
            let g = self.groups.0.remove(&gi).expect("complete groups exist");
            feed.finished(gi, Ok(output(g)));
        }
        if self.open {
            match feed.poll(self.groups.0.is_empty()) {
                None => self.open = false,
                Some(new) => {
                    for r in new {
                        self.add_request(feed, r);
                    }
                }
            }
        }
        let cancelled: Vec<usize> = self
            .groups
            .0
            .keys()
            .copied()
            .filter(|&gi| feed.is_cancelled(gi))
            .collect();
        for gi in cancelled {
            let g = self.groups.0.remove(&gi).expect("listed above");
            self.ready.remove(&gi);
            self.pending.retain(|&p| p != gi);
            self.waiting.retain(|s| s.group != gi);
            self.running.retain(|s| s.group != gi);
            self.progress.requests_total -= 1;
            self.progress.samples_total -= g.req.params.n;
            self.progress.samples_done -= g.done;
            tracing::debug!(request = g.req.id, "request cancelled");
        }
    }

    /// A new request from the feed: a pending group, or its error answered at once.
    fn add_request<F: Feed>(&mut self, feed: &mut F, r: Request) {
        let eng = self.eng;
        let seq = self.next_seq;
        self.next_seq += 1;
        let checked = eng.validate(&r).and_then(|_| {
            let plan = eng.force_plan(&r)?;
            Ok((eng.limits(&r, &plan)?.0, plan))
        });
        let (max_new, force) = match checked {
            Ok(x) => x,
            Err(e) => {
                feed.finished(seq, Err(e));
                return;
            }
        };
        let mut stop_ids = r.params.stop_token_ids.clone();
        if !r.params.ignore_eos {
            stop_ids.extend(&eng.cfg.eos_token_ids);
        }
        self.progress.requests_total += 1;
        self.progress.samples_total += r.params.n;
        self.groups.0.insert(
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
        self.pending.push_back(seq);
    }

    /// KV bytes held by running sequences and prefilled parents.
    fn held(&self) -> usize {
        let model = &self.eng.model;
        let r: usize = self
            .running
            .iter()
            .map(|s| s.cache.as_ref().map_or(0, |c| model.cache_len(c)))
            .sum();
        let p: usize = self
            .ready
            .iter()
            .filter_map(|&g| {
                self.groups[g]
                    .ready
                    .as_ref()
                    .map(|(c, _)| model.cache_len(c))
            })
            .sum();
        (r + p) * self.bpt
    }

    /// Admission (a): spawns children of prefilled groups (oldest group first).
    pub(super) fn spawn_children(&mut self, on_event: &mut impl FnMut(Event<'_>)) -> Result<()> {
        let (bpt, budget) = (self.bpt, self.budget);
        let ready_now: Vec<usize> = self.ready.iter().copied().collect();
        for gi in ready_now {
            loop {
                let g = &self.groups[gi];
                if g.ready.is_none()
                    || g.spawned >= g.req.params.n
                    || self.running.len() >= self.max_bs
                {
                    break;
                }
                let plen = g.req.prompt_ids.len();
                let last = g.spawned + 1 == g.req.params.n;
                let held = self.held();
                let reserve = decode_count(&self.running) * bpt;
                let extra = if last { 0 } else { plen * bpt };
                // Copy the prompt cache when it fits; with nothing running and no room
                // for a copy, hand the cache over and recompute the prompt later.
                let take = if held + extra + reserve <= budget {
                    last
                } else if self.running.is_empty() && held <= budget {
                    true
                } else {
                    break;
                };
                let g = &mut self.groups[gi];
                let index = g.spawned;
                g.spawned += 1;
                let (cache, logits) = if take {
                    self.ready.remove(&gi);
                    g.ready.take().expect("checked above")
                } else {
                    let (c, l) = g.ready.as_ref().expect("checked above");
                    (c.clone(), l.clone())
                };
                if take && !last {
                    self.progress.preemptions += 1;
                    self.waiting.push_front(Seq {
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
                    order: self.next_order,
                };
                self.next_order += 1;
                let fin = self.eng.sample_into(&mut seq, &logits, g)?;
                self.progress.generated_tokens += 1;
                match fin {
                    Some(c) => {
                        if finish(&mut self.groups[gi], c, &mut self.progress, on_event) {
                            self.complete.push(gi);
                        }
                    }
                    None => self.running.push(seq),
                }
            }
        }
        Ok(())
    }

    /// Admission (b): admits waiting sequences (preempted ones first), then new requests.
    pub(super) fn admit(&mut self) {
        loop {
            if self.running.len() >= self.max_bs {
                break;
            }
            if self.waiting.is_empty() {
                let Some(gi) = self.pending.pop_front() else {
                    break;
                };
                self.waiting.push_back(Seq {
                    group: gi,
                    role: Role::Parent,
                    tokens: self.groups[gi].req.prompt_ids.clone(),
                    cache: None,
                    order: self.next_order,
                });
                self.next_order += 1;
            }
            let cand = self.waiting.front().expect("not empty");
            let held = self.held();
            let reserve = decode_count(&self.running) * self.bpt;
            if held + reserve + cand.tokens.len() * self.bpt > self.budget {
                break;
            }
            let mut s = self.waiting.pop_front().expect("not empty");
            s.cache = Some(self.eng.model.new_cache());
            self.running.push(s);
        }
    }

    /// Plans the step: one token of every decoding sequence, then prefill chunks, within the
    /// KV budget; frees memory (parents, then the youngest sequences) until that fits.
    /// Returns the tokens each running sequence feeds.
    pub(super) fn plan_step(&mut self) -> Result<Vec<usize>> {
        self.running.sort_by_key(|s| s.order);
        let bpt = self.bpt;
        loop {
            let mut room = self.budget.saturating_sub(self.held()) / bpt.max(1);
            let mut prefill_left = self.eng.cfg.prefill_chunk;
            let mut chunks = vec![0usize; self.running.len()];
            let mut ok = true;
            // Decodes first: one token each, always.
            for (k, s) in self.running.iter().enumerate() {
                let pending = s.tokens.len() - self.eng.cache_len(s);
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
                for (k, s) in self.running.iter().enumerate() {
                    if chunks[k] > 0 {
                        continue;
                    }
                    let pending = s.tokens.len() - self.eng.cache_len(s);
                    let c = pending.min(prefill_left).min(room);
                    chunks[k] = c;
                    prefill_left -= c;
                    room -= c;
                }
                if chunks.iter().any(|&c| c > 0) {
                    return Ok(chunks);
                }
            }
            // Out of memory for this step: free something and plan again.
            if self.drop_one_parent() {
                continue;
            }
            if self.running.len() <= 1 {
                return Err(Error::Config(format!(
                    "KV budget of {} bytes cannot hold the oldest sequence",
                    self.budget
                )));
            }
            let mut victim = self.running.pop().expect("len > 1");
            victim.cache = None;
            self.progress.preemptions += 1;
            tracing::debug!(group = victim.group, "preempted a sequence (KV budget)");
            self.waiting.push_front(victim);
        }
    }

    /// Runs the planned step (one packed model call), then samples every sequence whose
    /// pending tokens are all cached, and reports progress.
    pub(super) fn step(
        &mut self,
        chunks: &[usize],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<()> {
        let (eng, vocab) = (self.eng, self.vocab);
        let step_kv = self.held() + chunks.iter().sum::<usize>() * self.bpt;
        self.progress.peak_kv_bytes = self.progress.peak_kv_bytes.max(step_kv);
        let mut idx = Vec::new();
        let mut items = Vec::new();
        for (k, s) in self.running.iter_mut().enumerate() {
            if chunks[k] == 0 {
                continue;
            }
            let from = s.cache.as_ref().map_or(0, |c| eng.model.cache_len(c));
            if !is_child(s) || from + 1 < s.tokens.len() {
                self.progress.prompt_tokens += chunks[k];
            }
            idx.push(k);
            items.push(StepItem {
                tokens: &s.tokens[from..from + chunks[k]],
                cache: s.cache.as_mut().expect("running sequences hold a cache"),
            });
        }
        let logits = eng.model.step(&mut items)?;
        drop(items);
        if logits.len() != idx.len() * vocab {
            return Err(Error::Config(format!(
                "model step returned {} logits for {} rows of {vocab}",
                logits.len(),
                idx.len()
            )));
        }
        self.progress.steps += 1;
        self.progress.running = idx.len();
        // Sequences whose pending tokens are all in the cache now get their next token.
        let mut rows: Vec<Option<&[f32]>> = vec![None; self.running.len()];
        for (r, &k) in idx.iter().enumerate() {
            let s = &self.running[k];
            if eng.cache_len(s) == s.tokens.len() {
                rows[k] = Some(&logits[r * vocab..(r + 1) * vocab]);
            }
        }
        // Parents that finished prefilling become ready.
        let mut k = 0;
        let mut parent_rows = Vec::new();
        while k < self.running.len() {
            if matches!(self.running[k].role, Role::Parent) && rows[k].is_some() {
                let row = rows.remove(k).expect("checked").to_vec();
                let s = self.running.remove(k);
                parent_rows.push((s, row));
            } else {
                k += 1;
            }
        }
        for (s, row) in parent_rows {
            self.groups[s.group].ready = Some((s.cache.expect("ran"), row));
            self.ready.insert(s.group);
        }
        let groups = &self.groups;
        let outcomes: Vec<Result<Option<Completion>>> = self
            .running
            .par_iter_mut()
            .zip(rows.par_iter())
            .map(|(s, row)| match row {
                Some(row) => eng.sample_into(s, row, &groups[s.group]),
                None => Ok(None),
            })
            .collect();
        let sampled = rows.iter().filter(|r| r.is_some()).count();
        self.progress.generated_tokens += sampled;
        let mut finished = vec![false; self.running.len()];
        for (k, o) in outcomes.into_iter().enumerate() {
            if let Some(c) = o? {
                finished[k] = true;
                let gi = self.running[k].group;
                if finish(&mut self.groups[gi], c, &mut self.progress, on_event) {
                    self.complete.push(gi);
                }
            }
        }
        let mut k = 0;
        self.running.retain(|_| {
            k += 1;
            !finished[k - 1]
        });
        self.progress.elapsed_s = self.started.elapsed().as_secs_f64();
        on_event(Event::Progress(self.progress));
        Ok(())
    }

    /// Drops the youngest prefilled parent, queueing its prompt for recomputation.
    pub(super) fn drop_one_parent(&mut self) -> bool {
        let Some(gi) = self.ready.pop_last() else {
            return false;
        };
        self.groups[gi].ready = None;
        self.waiting.push_front(Seq {
            group: gi,
            role: Role::Parent,
            tokens: self.groups[gi].req.prompt_ids.clone(),
            cache: None,
            order: 0,
        });
        true
    }
}

fn is_child<C>(s: &Seq<C>) -> bool {
    matches!(s.role, Role::Child(_))
}

/// Children whose only pending token is their last sampled one.
fn decode_count<C>(running: &[Seq<C>]) -> usize {
    running.iter().filter(|s| is_child(s)).count()
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
pub(super) struct Groups<C>(pub(super) HashMap<usize, Group<C>>);

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
