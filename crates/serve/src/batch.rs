//! Batching: the sampling thread's [`SampleFeed`] (jobs from the handlers in, answers out,
//! requests of gone clients dropped) and the handlers' side of the queue (reservations, 429,
//! 504).

use super::*;

/// Per request of a job, its `n` completions by sample index.
pub(crate) type Reply = std::result::Result<Vec<Vec<TextCompletion>>, ApiError>;

/// Requests of one HTTP call, answered together.
pub(crate) struct Job {
    pub(crate) requests: Vec<TextRequest>,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// What the handlers send the engine thread.
pub(crate) enum Msg {
    Job(Job),
    /// Test hook: the engine thread panics.
    Crash,
}

/// A job the engine thread is working on.
pub(crate) struct Pending {
    /// `None` once answered (an error): its other requests are then dropped.
    pub(crate) reply: Option<oneshot::Sender<Reply>>,
    pub(crate) outs: Vec<Option<Vec<TextCompletion>>>,
    pub(crate) left: usize,
}

/// The sampler's [`SampleFeed`]: jobs from the handlers in, answers out.
pub(crate) struct ServerFeed<'a> {
    pub(crate) rx: &'a mut mpsc::UnboundedReceiver<Msg>,
    pub(crate) window: Duration,
    pub(crate) stats: &'a ServerStats,
    pub(crate) jobs: HashMap<u64, Pending>,
    /// Arrival index -> (job, position in the job).
    pub(crate) seqs: HashMap<usize, (u64, usize)>,
    pub(crate) next_seq: usize,
    pub(crate) next_job: u64,
}

impl ServerFeed<'_> {
    pub(crate) fn take(&mut self, msg: Msg, out: &mut Vec<TextRequest>) {
        let job = match msg {
            Msg::Job(j) => j,
            Msg::Crash => panic!("engine thread crashed on purpose (test hook)"),
        };
        if job.reply.is_closed() {
            return; // the client went away while queued
        }
        let id = self.next_job;
        self.next_job += 1;
        let k = job.requests.len();
        for (i, r) in job.requests.into_iter().enumerate() {
            self.seqs.insert(self.next_seq, (id, i));
            self.next_seq += 1;
            out.push(r);
        }
        self.jobs.insert(
            id,
            Pending {
                reply: Some(job.reply),
                outs: (0..k).map(|_| None).collect(),
                left: k,
            },
        );
    }

    /// Forgets request `seq`; drops its job when it was the last.
    pub(crate) fn forget(&mut self, seq: usize) -> Option<(u64, usize)> {
        let (id, i) = self.seqs.remove(&seq)?;
        if let Some(p) = self.jobs.get_mut(&id) {
            p.left -= 1;
            if p.left == 0 && p.reply.is_none() {
                self.jobs.remove(&id);
            }
        }
        Some((id, i))
    }

    /// Answers every job with `err` (the engine run failed).
    pub(crate) fn fail_all(&mut self, err: impl Fn() -> ApiError) {
        for (_, p) in self.jobs.drain() {
            if let Some(r) = p.reply {
                let _ = r.send(Err(err()));
            }
        }
        self.seqs.clear();
    }
}

impl SampleFeed for ServerFeed<'_> {
    fn poll(&mut self, idle: bool) -> Option<Vec<TextRequest>> {
        let mut out = Vec::new();
        if idle {
            let first = self.rx.blocking_recv()?;
            self.take(first, &mut out);
            if !self.window.is_zero() {
                std::thread::sleep(self.window);
            }
        }
        loop {
            match self.rx.try_recv() {
                Ok(m) => self.take(m, &mut out),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    if out.is_empty() && idle {
                        return None;
                    }
                    break;
                }
            }
        }
        Some(out)
    }

    fn is_cancelled(&mut self, seq: usize) -> bool {
        let Some(&(id, _)) = self.seqs.get(&seq) else {
            return true;
        };
        let gone = match self.jobs.get(&id) {
            None => true,
            Some(p) => match &p.reply {
                None => true,
                Some(r) if r.is_closed() => {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Some(_) => false,
            },
        };
        if gone {
            self.forget(seq);
        }
        gone
    }

    fn finished(&mut self, seq: usize, output: engine::Result<Vec<TextCompletion>>) {
        let Some(&(id, i)) = self.seqs.get(&seq) else {
            return;
        };
        let Some(p) = self.jobs.get_mut(&id) else {
            self.seqs.remove(&seq);
            return;
        };
        match output {
            Ok(o) => {
                self.stats.requests.fetch_add(1, Ordering::Relaxed);
                p.outs[i] = Some(o);
                if p.left == 1 {
                    if let Some(r) = p.reply.take() {
                        let outs = std::mem::take(&mut p.outs)
                            .into_iter()
                            .map(|o| o.expect("every request of the job finished"))
                            .collect();
                        let _ = r.send(Ok(outs));
                    }
                }
            }
            Err(e) => {
                if let Some(r) = p.reply.take() {
                    let _ = r.send(Err(request_error(e)));
                }
            }
        }
        self.forget(seq);
    }
}

/// The answer to a request the sampler could not serve: 400 for a bad request, 502 when
/// the sampler is a client of other servers and they failed, else the error as a 400 (the
/// engine refuses a request that cannot fit with another error).
pub(crate) fn request_error(e: engine::Error) -> ApiError {
    match e {
        engine::Error::InvalidRequest { msg, .. } => ApiError::bad(msg, None),
        engine::Error::Sampler(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the upstream sampler failed: {e}"),
            None,
            "BadGatewayError",
        ),
        other => ApiError::bad(other.to_string(), None),
    }
}

/// The sampling thread: runs the sampler on the jobs as they come; a failed run answers its
/// jobs with a 500 and the sampler goes on with the next ones.
pub(crate) fn engine_loop(
    sampler: &dyn Sampler,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    window: Duration,
    stats: &ServerStats,
) {
    loop {
        let mut feed = ServerFeed {
            rx: &mut rx,
            window,
            stats,
            jobs: HashMap::new(),
            seqs: HashMap::new(),
            next_seq: 0,
            next_job: 0,
        };
        let result = sampler.serve(&mut feed, &mut |ev| match ev {
            ServeEvent::Step { running } => {
                stats.steps.fetch_add(1, Ordering::Relaxed);
                stats
                    .peak_running
                    .fetch_max(running as u64, Ordering::Relaxed);
            }
            ServeEvent::Completion { .. } => {
                stats.completions.fetch_add(1, Ordering::Relaxed);
            }
        });
        match result {
            Ok(()) => return, // every handle is gone: the server has stopped
            Err(e) => {
                tracing::error!("generation failed: {e}");
                feed.fail_all(|| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("generation failed: {e}"),
                        None,
                        "InternalServerError",
                    )
                });
            }
        }
    }
}

/// Runs `f` (parsing, templating, tokenizing) on the blocking pool, a few at a time, so the
/// async workers stay free for other connections and `/health`.
pub(crate) async fn off_worker<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    let _slot = st
        .prep_slots
        .acquire()
        .await
        .map_err(|_| unavailable("the server is shutting down"))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("preparing the request failed: {e}"),
            None,
            "InternalServerError",
        )
    })?
}

pub(crate) fn unavailable(msg: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        msg,
        None,
        "ServiceUnavailableError",
    )
}

/// Completions held in the queue by one request; released when dropped.
pub(crate) struct Reservation<'a> {
    pub(crate) stats: &'a ServerStats,
    pub(crate) samples: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.stats
            .queued_samples
            .fetch_sub(self.samples, Ordering::SeqCst);
    }
}

/// Queues the requests and waits for the engine thread's answer, within the deadline. When
/// this future is dropped (the client disconnected) or the deadline passes, the reply
/// channel closes and the engine drops the requests at its next step.
pub(crate) async fn submit(
    st: &AppState,
    prompts: Vec<Prompt>,
    params: &SamplingParams,
) -> std::result::Result<Vec<Vec<TextCompletion>>, ApiError> {
    let samples = prompts.len() * params.n;
    let q = &st.stats.queued_samples;
    let mut cur = q.load(Ordering::SeqCst);
    loop {
        if cur + samples > st.max_queued_samples {
            st.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the server is busy ({cur} completions queued or running, limit {}); retry later",
                    st.max_queued_samples
                ),
                None,
                "RateLimitError",
            ));
        }
        match q.compare_exchange_weak(cur, cur + samples, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    let _held = Reservation {
        stats: &st.stats,
        samples,
    };
    let requests = prompts
        .into_iter()
        .map(|prompt| TextRequest {
            prompt,
            params: params.clone(),
        })
        .collect();
    let (reply, rx) = oneshot::channel();
    st.jobs
        .send(Msg::Job(Job { requests, reply }))
        .map_err(|_| unavailable("the engine is not running"))?;
    match tokio::time::timeout(st.request_timeout, rx).await {
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the request did not finish within the server's deadline of {} s; it was cancelled",
                st.request_timeout.as_secs_f64()
            ),
            None,
            "TimeoutError",
        )),
        Ok(Err(_)) => Err(unavailable("the engine is not running")),
        Ok(Ok(r)) => r,
    }
}
