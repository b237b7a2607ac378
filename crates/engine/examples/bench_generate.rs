//! `cargo run --release -p engine --example bench_generate -- MODEL [BATCHES] [NEW_TOKENS]`:
//! the `rzero bench generate` measurement without the CLI; prints one JSON line per batch.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).ok_or("usage: bench_generate MODEL [1,8,32] [256]")?;
    let batches: Vec<usize> = args
        .get(2)
        .map_or("1,8,32", |s| s.as_str())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let new_tokens: usize = args.get(3).map_or(Ok(256), |s| s.parse())?;
    let loaded = model::load(spec, &model::LoadOptions::default())?;
    let m = loaded.model()?;
    let encode = |s: &str| -> engine::Result<Vec<u32>> { Ok(loaded.tokenizer.encode(s, false)?) };
    for b in batches {
        let cfg = engine::EngineConfig {
            eos_token_ids: loaded.generation.eos_token_ids.clone(),
            ..engine::EngineConfig::default()
        };
        let row = engine::bench::bench_batch(&m, &loaded.tokenizer, &encode, cfg, b, new_tokens)?;
        let mut v = serde_json::to_value(&row)?;
        v["engine"] = "rzero".into();
        v["model"] = spec.as_str().into();
        v["dtype"] = "f32".into();
        println!("{v}");
    }
    Ok(())
}
