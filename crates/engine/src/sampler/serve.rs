//! [`Sampler::serve`]: requests that arrive over time (a server's queue). The local engine
//! runs them with continuous batching through [`Engine::run`]; any other sampler runs them
//! in whole batches through [`Sampler::generate`].

use super::{LocalSampler, Prompt, Sampler, TextCompletion, TextRequest};
use crate::engine::{Engine, Feed};
use crate::error::{Error, Result};
use crate::params::{Event, Request, RequestOutput};

/// A queue of requests that arrive while others run, as [`Sampler::serve`] reads it.
/// Requests are numbered by arrival (`seq`: 0, 1, ... over the whole run).
pub trait SampleFeed {
    /// New requests, asked before every step. `idle` is true when nothing runs: the call
    /// may then block until something arrives. `None` closes the feed: the run ends once
    /// the requests taken are answered.
    fn poll(&mut self, idle: bool) -> Option<Vec<TextRequest>>;
    /// Whether request `seq` is no longer wanted (asked before every step): it is then
    /// dropped, its work freed, and never answered.
    fn is_cancelled(&mut self, seq: usize) -> bool;
    /// Request `seq` finished: its `params.n` completions ordered by sample index, or why it
    /// cannot be served (an [`Error::InvalidRequest`] for a bad request).
    fn finished(&mut self, seq: usize, output: Result<Vec<TextCompletion>>);
}

/// What [`Sampler::serve`] reports as it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEvent {
    /// A step ran with `running` sequences: one model step of the local engine, one whole
    /// batch of a sampler without continuous batching.
    Step {
        /// Sequences in the step (samples in the batch).
        running: usize,
    },
    /// Sample `index` of request `seq` finished (reported as soon as it does, before the
    /// request is answered).
    Completion {
        /// The request's arrival number.
        seq: usize,
        /// The sample index.
        index: usize,
    },
}

/// The model behind a sampler, as a server checking prompts needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// Longest sequence (prompt + generated tokens).
    pub context: usize,
    /// Vocabulary size: token ids are below it.
    pub vocab_size: usize,
}

/// [`Sampler::serve`]'s default: what is queued, as one [`Sampler::generate`] batch.
pub(super) fn in_batches<S: Sampler + ?Sized>(
    sampler: &S,
    feed: &mut dyn SampleFeed,
    on_event: &mut dyn FnMut(ServeEvent),
) -> Result<()> {
    let mut arrived = 0usize;
    while let Some(new) = feed.poll(true) {
        let mut seqs = Vec::with_capacity(new.len());
        let mut batch = Vec::with_capacity(new.len());
        for r in new {
            let seq = arrived;
            arrived += 1;
            if !feed.is_cancelled(seq) {
                seqs.push(seq);
                batch.push(r);
            }
        }
        if batch.is_empty() {
            continue;
        }
        on_event(ServeEvent::Step {
            running: batch.iter().map(|r| r.params.n).sum(),
        });
        match sampler.generate(&batch) {
            Ok(outs) if outs.len() == batch.len() => {
                for (&seq, out) in seqs.iter().zip(outs) {
                    answer(feed, on_event, seq, Ok(out));
                }
            }
            Ok(outs) => {
                let msg = format!(
                    "the sampler answered {} of {} requests",
                    outs.len(),
                    batch.len()
                );
                return Err(Error::Sampler(msg.into()));
            }
            Err(e) if batch.len() == 1 => answer(feed, on_event, seqs[0], Err(e)),
            // One request at a time, so one request's error is its own.
            Err(_) => {
                for (&seq, r) in seqs.iter().zip(&batch) {
                    if feed.is_cancelled(seq) {
                        continue;
                    }
                    let out = sampler
                        .generate(std::slice::from_ref(r))
                        .and_then(|o| o.into_iter().next().ok_or_else(|| no_answer(seq)));
                    answer(feed, on_event, seq, out);
                }
            }
        }
    }
    Ok(())
}

fn no_answer(seq: usize) -> Error {
    Error::Sampler(format!("the sampler did not answer request {seq}").into())
}

/// Reports the completions of `seq`, then answers it.
fn answer(
    feed: &mut dyn SampleFeed,
    on_event: &mut dyn FnMut(ServeEvent),
    seq: usize,
    out: Result<Vec<TextCompletion>>,
) {
    if let Ok(cs) = &out {
        for index in 0..cs.len() {
            on_event(ServeEvent::Completion { seq, index });
        }
    }
    feed.finished(seq, out);
}

/// [`LocalSampler`]'s [`Sampler::serve`]: [`Engine::run`] over the feed, so a request joins
/// the running batch at the next model step and a cancelled one is dropped mid-generation.
pub(super) fn continuously(
    sampler: &LocalSampler<'_>,
    feed: &mut dyn SampleFeed,
    on_event: &mut dyn FnMut(ServeEvent),
) -> Result<()> {
    let engine: &Engine<_, _> = sampler.engine();
    let mut f = EngineFeed {
        sampler,
        feed,
        arrived: 0,
        seqs: Vec::new(),
    };
    engine.run(&mut f, |ev| match ev {
        Event::Progress(p) => on_event(ServeEvent::Step { running: p.running }),
        Event::Completion(c) => on_event(ServeEvent::Completion {
            seq: c.request_id as usize,
            index: c.index,
        }),
    })
}

/// The engine's [`Feed`] over a [`SampleFeed`]: prompts tokenized as they arrive (a prompt
/// that cannot be is answered at once and never reaches the engine), the engine's request
/// numbers mapped back to the feed's.
struct EngineFeed<'s, 'a, 'f> {
    sampler: &'s LocalSampler<'a>,
    feed: &'f mut dyn SampleFeed,
    /// Requests taken from the feed.
    arrived: usize,
    /// Engine request number -> the feed's.
    seqs: Vec<usize>,
}

impl Feed for EngineFeed<'_, '_, '_> {
    fn poll(&mut self, idle: bool) -> Option<Vec<Request>> {
        let new = self.feed.poll(idle)?;
        let mut out = Vec::with_capacity(new.len());
        for r in new {
            let seq = self.arrived;
            self.arrived += 1;
            let ids = match r.prompt {
                Prompt::Tokens(ids) => Ok(ids),
                p => self.sampler.prompt_ids(&p),
            };
            match ids {
                Ok(prompt_ids) => {
                    self.seqs.push(seq);
                    out.push(Request {
                        id: seq as u64,
                        prompt_ids,
                        params: r.params,
                    });
                }
                Err(e) => self.feed.finished(
                    seq,
                    Err(Error::InvalidRequest {
                        request_id: seq as u64,
                        msg: e.to_string(),
                    }),
                ),
            }
        }
        Some(out)
    }

    fn is_cancelled(&mut self, seq: usize) -> bool {
        self.feed.is_cancelled(self.seqs[seq])
    }

    fn finished(&mut self, seq: usize, output: Result<RequestOutput>) {
        let out = output.and_then(|o| self.sampler.texts(o));
        self.feed.finished(self.seqs[seq], out);
    }
}
