//! `cargo run --release -p engine --example bench_generate -- MODEL [BATCHES] [NEW_TOKENS]`:
//! the `rzero bench generate` measurement without the CLI; prints one JSON line per batch.

/// Times the model's share of a run.
struct Timed<'a> {
    inner: &'a model::Model,
    ns: std::sync::atomic::AtomicU64,
}

impl engine::StepModel for Timed<'_> {
    type Cache = model::KvCache;
    fn new_cache(&self) -> Self::Cache {
        self.inner.new_cache()
    }
    fn cache_len(&self, c: &Self::Cache) -> usize {
        c.len()
    }
    fn kv_bytes_per_token(&self) -> usize {
        engine::StepModel::kv_bytes_per_token(self.inner)
    }
    fn vocab_size(&self) -> usize {
        engine::StepModel::vocab_size(self.inner)
    }
    fn max_positions(&self) -> usize {
        engine::StepModel::max_positions(self.inner)
    }
    fn step(&self, items: &mut [engine::StepItem<'_, Self::Cache>]) -> engine::Result<Vec<f32>> {
        let t = std::time::Instant::now();
        let r = engine::StepModel::step(self.inner, items);
        self.ns.fetch_add(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        r
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args
        .get(1)
        .ok_or("usage: bench_generate MODEL [1,8,32] [256]")?;
    let batches: Vec<usize> = args
        .get(2)
        .map_or("1,8,32", |s| s.as_str())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let new_tokens: usize = args.get(3).map_or(Ok(256), |s| s.parse())?;
    let loaded = model::load(spec, &model::LoadOptions::default())?;
    let mut m = loaded.model()?;
    // `RZERO_BENCH_F32_READS=1`: the packed path reads the f32 weights even where the GGUF's
    // blocks are kept (to measure what the block-format reads are worth).
    if std::env::var_os("RZERO_BENCH_F32_READS").is_some() {
        m.attach_compact(&Default::default());
    }
    // `RZERO_BENCH_AVX2=1`: the AVX2 product kernel even where AVX-512VL is available.
    if std::env::var_os("RZERO_BENCH_AVX2").is_some() {
        assert!(
            model::packed::CpuKernel::select(Some(model::packed::CpuKernel::Avx2)),
            "RZERO_BENCH_AVX2=1 on a CPU without AVX2"
        );
    }
    let encode = |s: &str| -> engine::Result<Vec<u32>> { Ok(loaded.tokenizer.encode(s, false)?) };
    for b in batches {
        let cfg = engine::EngineConfig {
            eos_token_ids: loaded.generation.eos_token_ids.clone(),
            ..engine::EngineConfig::default()
        };
        let timed = Timed {
            inner: &m,
            ns: Default::default(),
        };
        let t = std::time::Instant::now();
        let row =
            engine::bench::bench_batch(&timed, &loaded.tokenizer, &encode, cfg, b, new_tokens)?;
        let total = t.elapsed().as_secs_f64();
        let mut v = serde_json::to_value(&row)?;
        v["model_share"] =
            (timed.ns.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9 / total).into();
        v["engine"] = "rzero".into();
        v["model"] = spec.as_str().into();
        v["dtype"] = "f32".into();
        v["weight_reads"] = if m.compact_count() > 0 {
            "gguf blocks expanded to f32 per tile (bit-identical)"
        } else {
            "f32"
        }
        .into();
        println!("{v}");
    }
    Ok(())
}
