//! Scheduler tests on a fake model whose logits are a hash of the whole token history:
//! any cache mix-up (wrong copy, lost token, bad recomputation) changes the tokens.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use engine::{
    Detokenize, Engine, EngineConfig, Error, Event, FinishReason, Request, RequestOutput,
    SamplingParams, StepItem, StepModel,
};

const VOCAB: usize = 40;
const BPT: usize = 100;

/// Counts live cached tokens across all caches of one model.
#[derive(Default)]
struct Live {
    tokens: AtomicUsize,
    peak: AtomicUsize,
}

impl Live {
    fn add(&self, n: usize) {
        let now = self.tokens.fetch_add(n, Ordering::SeqCst) + n;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
}

struct FakeCache {
    toks: Vec<u32>,
    live: Arc<Live>,
}

impl Clone for FakeCache {
    fn clone(&self) -> Self {
        self.live.add(self.toks.len());
        Self {
            toks: self.toks.clone(),
            live: self.live.clone(),
        }
    }
}

impl Drop for FakeCache {
    fn drop(&mut self) {
        self.live
            .tokens
            .fetch_sub(self.toks.len(), Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Fake {
    live: Arc<Live>,
    fed: AtomicUsize,
    max_items: AtomicUsize,
    steps: AtomicUsize,
    ctx: usize,
}

impl Fake {
    fn new() -> Self {
        Self {
            ctx: 4096,
            ..Self::default()
        }
    }
}

/// Deterministic logits of a history: an FNV-style hash seeds a small LCG.
fn fake_logits(toks: &[u32]) -> Vec<f32> {
    let mut h: u64 = 0xcbf29ce484222325;
    for &t in toks {
        h ^= t as u64 + 1;
        h = h.wrapping_mul(0x100000001b3);
    }
    (0..VOCAB)
        .map(|_| {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 6.0 - 3.0
        })
        .collect()
}

impl StepModel for Fake {
    type Cache = FakeCache;
    fn new_cache(&self) -> FakeCache {
        FakeCache {
            toks: Vec::new(),
            live: self.live.clone(),
        }
    }
    fn cache_len(&self, c: &FakeCache) -> usize {
        c.toks.len()
    }
    fn kv_bytes_per_token(&self) -> usize {
        BPT
    }
    fn vocab_size(&self) -> usize {
        VOCAB
    }
    fn max_positions(&self) -> usize {
        self.ctx
    }
    fn step(&self, items: &mut [StepItem<'_, FakeCache>]) -> engine::Result<Vec<f32>> {
        self.max_items.fetch_max(items.len(), Ordering::SeqCst);
        self.steps.fetch_add(1, Ordering::SeqCst);
        let mut out = Vec::new();
        for it in items.iter_mut() {
            assert!(!it.tokens.is_empty());
            self.fed.fetch_add(it.tokens.len(), Ordering::SeqCst);
            it.cache.toks.extend_from_slice(it.tokens);
            self.live.add(it.tokens.len());
            out.extend(fake_logits(&it.cache.toks));
        }
        Ok(out)
    }
}

/// id -> one letter; ids 0..=2 are special and decode to "".
struct Letters;
impl Detokenize for Letters {
    fn decode(&self, ids: &[u32], skip_special: bool) -> engine::Result<String> {
        Ok(ids
            .iter()
            .filter(|&&i| !(skip_special && i <= 2))
            .map(|&i| (b'a' + (i % 26) as u8) as char)
            .collect())
    }
}

/// Greedy decoding by a plain loop over full histories.
fn reference_greedy(prompt: &[u32], n: usize) -> Vec<u32> {
    let mut t = prompt.to_vec();
    for _ in 0..n {
        let l = fake_logits(&t);
        t.push(engine::sampling::argmax(&l).unwrap());
    }
    t[prompt.len()..].to_vec()
}

fn prompts() -> Vec<Vec<u32>> {
    (0..7u32)
        .map(|i| {
            (0..(3 + 5 * i as usize))
                .map(|k| 3 + (i * 7 + k as u32 * 3) % 37)
                .collect()
        })
        .collect()
}

fn requests(params: &SamplingParams) -> Vec<Request> {
    prompts()
        .into_iter()
        .enumerate()
        .map(|(i, p)| Request {
            id: i as u64,
            prompt_ids: p,
            params: params.clone(),
        })
        .collect()
}

fn cfg(bs: usize, kv_tokens: usize, chunk: usize) -> EngineConfig {
    EngineConfig {
        max_batch_size: bs,
        max_kv_bytes: kv_tokens * BPT,
        prefill_chunk: chunk,
        eos_token_ids: vec![],
    }
}

fn run(model: &Fake, c: EngineConfig, reqs: &[Request]) -> Vec<RequestOutput> {
    Engine::new(model, Letters, c)
        .unwrap()
        .generate(reqs, |_| {})
        .unwrap()
}

fn ids(out: &[RequestOutput]) -> Vec<Vec<Vec<u32>>> {
    out.iter()
        .map(|r| r.completions.iter().map(|c| c.token_ids.clone()).collect())
        .collect()
}

#[test]
fn greedy_equals_reference_loop_for_any_batch_and_chunk() {
    let reqs = requests(&SamplingParams::greedy(12));
    let want: Vec<Vec<u32>> = reqs
        .iter()
        .map(|r| reference_greedy(&r.prompt_ids, 12))
        .collect();
    for (bs, chunk) in [(1, 512), (3, 4), (16, 7), (16, 1)] {
        let m = Fake::new();
        let out = run(&m, cfg(bs, 100_000, chunk), &reqs);
        for (r, w) in out.iter().zip(&want) {
            assert_eq!(&r.completions[0].token_ids, w, "bs {bs} chunk {chunk}");
            assert_eq!(r.completions[0].finish_reason, FinishReason::Length);
        }
        assert!(m.max_items.load(Ordering::SeqCst) <= bs);
        // Chunked prefill: no step took more than `chunk` prompt tokens plus decodes.
    }
}

#[test]
fn n_greedy_samples_are_identical_and_prefill_is_shared() {
    let mut p = SamplingParams::greedy(9);
    p.n = 4;
    let reqs = requests(&p);
    let m = Fake::new();
    let out = run(&m, cfg(32, 100_000, 512), &reqs);
    let mut expected_fed = 0;
    for (r, req) in out.iter().zip(&reqs) {
        assert_eq!(r.completions.len(), 4);
        let want = reference_greedy(&req.prompt_ids, 9);
        for (i, c) in r.completions.iter().enumerate() {
            assert_eq!(c.index, i);
            assert_eq!(c.token_ids, want);
            expected_fed += c.token_ids.len() - 1;
        }
        expected_fed += req.prompt_ids.len();
    }
    // Each prompt went through the model once, not n times.
    assert_eq!(m.fed.load(Ordering::SeqCst), expected_fed);
}

fn sampled() -> SamplingParams {
    SamplingParams {
        n: 3,
        temperature: 0.9,
        top_p: 0.95,
        top_k: 20,
        min_p: 0.01,
        max_new_tokens: 15,
        seed: 42,
        ..SamplingParams::default()
    }
}

#[test]
fn seeded_sampling_is_reproducible_across_runs_batches_orders_and_budgets() {
    let reqs = requests(&sampled());
    let base = ids(&run(&Fake::new(), cfg(32, 100_000, 512), &reqs));
    assert_eq!(base, ids(&run(&Fake::new(), cfg(32, 100_000, 512), &reqs)));
    assert_eq!(base, ids(&run(&Fake::new(), cfg(1, 100_000, 512), &reqs)));
    assert_eq!(base, ids(&run(&Fake::new(), cfg(5, 100_000, 3), &reqs)));
    // Reverse arrival order: each request still gets the same samples.
    let mut rev = reqs.clone();
    rev.reverse();
    let mut r = ids(&run(&Fake::new(), cfg(8, 100_000, 512), &rev));
    r.reverse();
    assert_eq!(base, r);
    // A tiny budget forces waiting and preemption; results do not change.
    assert_eq!(base, ids(&run(&Fake::new(), cfg(32, 60, 8), &reqs)));
    // The samples of one prompt differ from each other (different streams) ...
    assert!(base.iter().any(|g| g[0] != g[1] || g[1] != g[2]));
    // ... and another seed gives other samples.
    let mut other = sampled();
    other.seed = 43;
    assert_ne!(
        base,
        ids(&run(&Fake::new(), cfg(32, 100_000, 512), &requests(&other)))
    );
}

#[test]
fn kv_budget_is_never_exceeded_and_forces_waiting() {
    let reqs = requests(&sampled());
    // Longest prompt 33 + 15 new - 1 = 47 tokens must fit alone; give 60.
    let mut total_preemptions = 0;
    for (bs, kv, chunk) in [(32, 60, 8), (4, 48, 512), (32, 100, 5)] {
        let m = Fake::new();
        let eng = Engine::new(&m, Letters, cfg(bs, kv, chunk)).unwrap();
        let mut peak_reported = 0;
        let mut preempt = 0;
        eng.generate(&reqs, |e| {
            if let Event::Progress(p) = e {
                peak_reported = p.peak_kv_bytes;
                preempt = p.preemptions;
            }
        })
        .unwrap();
        let peak = m.live.peak.load(Ordering::SeqCst);
        assert!(peak <= kv, "peak {peak} tokens > budget {kv} (bs {bs})");
        assert!(peak_reported <= kv * BPT);
        assert_eq!(m.live.tokens.load(Ordering::SeqCst), 0, "caches leaked");
        // Without a budget 21 sequences would be live at once; the budget held them back.
        assert!(m.max_items.load(Ordering::SeqCst) < 21);
        total_preemptions += preempt;
        eprintln!("bs {bs} kv {kv}: peak {peak} tokens, {preempt} preemptions");
    }
    assert!(
        total_preemptions > 0,
        "the tiny budgets should force preemption"
    );
}

#[test]
fn request_that_cannot_fit_the_budget_is_rejected() {
    let reqs = requests(&sampled());
    let err = Engine::new(&Fake::new(), Letters, cfg(32, 40, 8))
        .unwrap()
        .generate(&reqs, |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest { .. }), "{err}");
}

#[test]
fn eos_stop_ids_and_finish_reasons() {
    let prompt = prompts()[2].clone();
    let full = reference_greedy(&prompt, 30);
    // Use the token at position 5 as EOS; its first occurrence ends the completion.
    let eos = full[5];
    let cut = full.iter().position(|&t| t == eos).unwrap();
    let mk = |ignore_eos: bool, stop_ids: Vec<u32>| Request {
        id: 9,
        prompt_ids: prompt.clone(),
        params: SamplingParams {
            ignore_eos,
            stop_token_ids: stop_ids,
            ..SamplingParams::greedy(30)
        },
    };
    let mut c = cfg(8, 100_000, 512);
    c.eos_token_ids = vec![eos];
    let m = Fake::new();
    let eng = Engine::new(&m, Letters, c).unwrap();
    let out = eng.generate(&[mk(false, vec![])], |_| {}).unwrap();
    let comp = &out[0].completions[0];
    assert_eq!(comp.token_ids, full[..=cut].to_vec(), "EOS kept, then stop");
    assert_eq!(comp.finish_reason, FinishReason::Stop);
    let out = eng.generate(&[mk(true, vec![])], |_| {}).unwrap();
    assert_eq!(out[0].completions[0].token_ids, full);
    assert_eq!(out[0].completions[0].finish_reason, FinishReason::Length);
    // stop_token_ids apply even with ignore_eos.
    let out = eng.generate(&[mk(true, vec![eos])], |_| {}).unwrap();
    assert_eq!(out[0].completions[0].token_ids.len(), cut + 1);
    assert_eq!(out[0].completions[0].finish_reason, FinishReason::Stop);
}

#[test]
fn stop_strings_cut_text_and_end_generation() {
    let prompt = prompts()[4].clone();
    let full = reference_greedy(&prompt, 30);
    let text = Letters.decode(&full, true).unwrap();
    assert!(text.len() > 12, "needs non-special tokens: {text}");
    let stop = text[8..10].to_string();
    let at = text.find(&stop).unwrap();
    let req = Request {
        id: 1,
        prompt_ids: prompt.clone(),
        params: SamplingParams {
            stop: vec![stop.clone(), "zzzzzz".into()],
            ..SamplingParams::greedy(30)
        },
    };
    let out = run(&Fake::new(), cfg(4, 100_000, 512), &[req]);
    let c = &out[0].completions[0];
    assert_eq!(c.text, text[..at]);
    assert_eq!(c.finish_reason, FinishReason::Stop);
    assert_eq!(c.stop_string.as_deref(), Some(stop.as_str()));
    // Generation ended at the token that completed the stop string.
    let done = Letters.decode(&c.token_ids, true).unwrap();
    assert!(done.ends_with(&stop), "{done} / {stop}");
    assert_eq!(c.token_ids[..], full[..c.token_ids.len()]);
    // Without the stop string the full text comes back.
    let req = Request {
        id: 1,
        prompt_ids: prompt,
        params: SamplingParams::greedy(30),
    };
    let out = run(&Fake::new(), cfg(4, 100_000, 512), &[req]);
    assert_eq!(out[0].completions[0].text, text);
}

#[test]
fn logprobs_are_raw_log_softmax_of_the_history() {
    let prompt = prompts()[1].clone();
    let req = Request {
        id: 3,
        prompt_ids: prompt.clone(),
        params: SamplingParams {
            logprobs: true,
            temperature: 0.7,
            max_new_tokens: 10,
            seed: 5,
            ..SamplingParams::default()
        },
    };
    let out = run(&Fake::new(), cfg(4, 100_000, 512), &[req]);
    let c = &out[0].completions[0];
    let lp = c.logprobs.as_ref().unwrap();
    assert_eq!(lp.len(), c.token_ids.len());
    let mut hist = prompt;
    for (&t, &l) in c.token_ids.iter().zip(lp) {
        let logits = fake_logits(&hist);
        let m = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
        let z: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum();
        let want = logits[t as usize] as f64 - m - z.ln();
        assert!((l as f64 - want).abs() < 1e-5);
        hist.push(t);
    }
}

#[test]
fn completions_stream_as_they_finish_and_cancel_stops_cleanly() {
    let reqs = requests(&sampled());
    let m = Fake::new();
    let eng = Engine::new(&m, Letters, cfg(4, 100_000, 512)).unwrap();
    let seen = Mutex::new(Vec::new());
    let out = eng
        .generate(&reqs, |e| {
            if let Event::Completion(c) = e {
                seen.lock().unwrap().push((c.request_id, c.index));
            }
        })
        .unwrap();
    let mut seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 21);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 21);
    assert_eq!(out.len(), reqs.len());

    let flag: Arc<AtomicBool> = eng.cancel_flag();
    let mut finished = 0;
    let err = eng
        .generate(&reqs, |e| {
            if let Event::Completion(_) = e {
                finished += 1;
                flag.store(true, Ordering::SeqCst);
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert!(finished < 21);
    assert_eq!(
        m.live.tokens.load(Ordering::SeqCst),
        0,
        "caches freed on cancel"
    );
}

#[test]
fn invalid_requests_name_the_request() {
    let mut m = Fake::new();
    m.ctx = 20;
    let eng = Engine::new(&m, Letters, cfg(4, 100_000, 512)).unwrap();
    let bad = |prompt: Vec<u32>, p: SamplingParams| {
        eng.generate(
            &[Request {
                id: 77,
                prompt_ids: prompt,
                params: p,
            }],
            |_| {},
        )
        .unwrap_err()
        .to_string()
    };
    assert!(bad(vec![], SamplingParams::default()).contains("request 77: the prompt is empty"));
    assert!(bad(vec![3; 25], SamplingParams::default()).contains("context is 20"));
    assert!(bad(vec![3, 99], SamplingParams::default()).contains("vocabulary"));
    let p = SamplingParams {
        top_p: 0.0,
        ..SamplingParams::default()
    };
    assert!(bad(vec![3], p).contains("top_p"));
    // max_new_tokens is capped by the context: 15 + 5 = 20.
    let out = eng
        .generate(
            &[Request {
                id: 1,
                prompt_ids: vec![3; 15],
                params: SamplingParams::greedy(100),
            }],
            |_| {},
        )
        .unwrap();
    assert_eq!(out[0].completions[0].token_ids.len(), 5);
    assert_eq!(out[0].completions[0].finish_reason, FinishReason::Length);
}

#[test]
fn one_new_token_finishes_at_spawn() {
    let mut p = sampled();
    p.max_new_tokens = 1;
    let reqs = requests(&p);
    let out = run(&Fake::new(), cfg(2, 100_000, 512), &reqs);
    for r in &out {
        assert_eq!(r.completions.len(), 3);
        for c in &r.completions {
            assert_eq!(c.token_ids.len(), 1);
            assert_eq!(c.finish_reason, FinishReason::Length);
        }
    }
}

/// A feed that hands out requests at given steps and cancels one at a given step.
struct Staged {
    /// (step at which it arrives, request)
    arrivals: Vec<(usize, Request)>,
    /// (arrival index, step from which it is cancelled)
    cancel: Option<(usize, usize)>,
    polls: usize,
    done: Vec<(usize, RequestOutput)>,
}

impl engine::Feed for Staged {
    fn poll(&mut self, _idle: bool) -> Option<Vec<Request>> {
        let step = self.polls;
        self.polls += 1;
        if self.arrivals.is_empty() {
            return None;
        }
        let (now, later): (Vec<_>, Vec<_>) =
            self.arrivals.drain(..).partition(|(at, _)| *at <= step);
        self.arrivals = later;
        Some(now.into_iter().map(|(_, r)| r).collect())
    }
    fn is_cancelled(&mut self, seq: usize) -> bool {
        self.cancel
            .is_some_and(|(s, from)| s == seq && self.polls > from)
    }
    fn finished(&mut self, seq: usize, output: engine::Result<RequestOutput>) {
        self.done.push((seq, output.unwrap()));
    }
}

#[test]
fn run_takes_requests_mid_flight_and_drops_cancelled_ones() {
    let reqs = requests(&sampled());
    let want = ids(&run(&Fake::new(), cfg(32, 100_000, 512), &reqs));
    let m = Fake::new();
    let eng = Engine::new(&m, Letters, cfg(32, 100_000, 512)).unwrap();
    // Request k arrives at step 3k; request 2 (arrival index 2) is cancelled at step 8,
    // while it generates.
    let mut feed = Staged {
        arrivals: reqs
            .iter()
            .cloned()
            .enumerate()
            .map(|(k, r)| (3 * k, r))
            .collect(),
        cancel: Some((2, 8)),
        polls: 0,
        done: Vec::new(),
    };
    let mut running_max = 0;
    eng.run(&mut feed, |e| {
        if let Event::Progress(p) = e {
            running_max = running_max.max(p.running);
        }
    })
    .unwrap();
    // Every other request finished with exactly the samples of a one-shot generate
    // (late arrivals joined the running batch: more than one request's sequences ran).
    let mut done = feed.done;
    done.sort_by_key(|(s, _)| *s);
    let seqs: Vec<usize> = done.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [0, 1, 3, 4, 5, 6], "request 2 was cancelled");
    for (s, out) in &done {
        assert_eq!(ids(std::slice::from_ref(out))[0], want[*s], "request {s}");
    }
    assert!(running_max > 3, "late requests never shared a step");
    // The cancelled request's caches were freed.
    assert_eq!(m.live.tokens.load(Ordering::SeqCst), 0, "caches leaked");
}
