//! The built-in presets: `paper` (the reference's values), `demo` (SmolLM2-135M on two CPU
//! cores) and `tiny` (the tests' size). `demo` and `tiny` are edits of `paper`.

use super::*;

impl Config {
    /// The reference's (paper-scale) configuration.
    pub fn paper() -> Self {
        Config {
            model: "Qwen/Qwen3-4B-Base".into(),
            iterations: 3,
            seed: 1,
            answer_fallbacks: false,
            engine: EngineSection {
                max_batch_size: 256,
                max_kv_bytes: 0,
                force_answer_cue: default_force_cue(),
                force_answer_tokens: default_force_tokens(),
                policy_weights: engine::PolicyWeights::F32,
            },
            challenger: ChallengerSection {
                rollout_batch_size: 512,
                group_size: 4,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.99,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                solver_samples: 10,
                vote: Vote::Reference,
                solver_sampling: Sampling {
                    temperature: 1.0,
                    top_p: 1.0,
                    top_k: 40,
                    max_new_tokens: 4096,
                },
                solver_force_answer: false,
                format_failure_reward: -1.0,
                repetition_threshold: 0.5,
                format_example: false,
                response_prefix: String::new(),
                optim: paper_optim(5, 16, 2),
            },
            dataset: DatasetSection {
                num_questions: 8000,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.95,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                solver_samples: 9,
                vote: Vote::Reference,
                solver_sampling: Sampling {
                    temperature: 1.0,
                    top_p: 1.0,
                    top_k: 40,
                    max_new_tokens: 4096,
                },
                solver_force_answer: false,
                min_p_hat: 0.3,
                max_p_hat: 0.8,
                chunk: 256,
            },
            solver: SolverSection {
                rollout_batch_size: 512,
                group_size: 5,
                sampling: Sampling {
                    temperature: 1.0,
                    top_p: 0.99,
                    top_k: 0,
                    max_new_tokens: 4096,
                },
                accuracy_weight: 0.9,
                format_weight: 0.1,
                format_example: false,
                force_answer: false,
                optim: paper_optim(15, 128, 1),
            },
            eval: paper_eval(),
            audit: AuditSection {
                benchmarks: vec!["math500".into()],
                limit: 200,
                samples: 10,
                max_new_tokens: 4096,
            },
            remote: paper_remote(),
        }
    }

    /// SmolLM2-135M on 2 CPU cores: small batches, short generations, format examples for
    /// both roles and forced final answers. Aimed at questions kept and a learning signal in
    /// every Solver step within 20 minutes of loop time; measured (`bench/results/demo.jsonl`,
    /// 2026-12-07, on a loaded machine, ~1,670 CPU seconds): 11 and 18 questions kept; the one
    /// Solver step per iteration with a non-zero advantage on 60% and 80% of its samples.
    pub fn demo() -> Self {
        let mut c = Self::paper();
        c.model = "smollm2".into();
        c.iterations = 2;
        c.seed = 1;
        c.answer_fallbacks = true;
        c.engine.max_batch_size = 32;
        // small rollouts, two updates each, so the clip acts on CPU too
        c.challenger.rollout_batch_size = 2;
        c.challenger.optim.global_batch_size = 1;
        c.challenger.group_size = 4;
        c.challenger.vote = Vote::Extracted;
        c.dataset.vote = Vote::Extracted;
        c.challenger.sampling.max_new_tokens = 64;
        c.challenger.solver_samples = 4;
        c.challenger.solver_sampling.max_new_tokens = 96;
        c.challenger.format_example = true;
        c.challenger.response_prefix = "<question>\n".into();
        c.challenger.optim.steps = 2;
        c.challenger.optim.lr = 5e-6;
        c.dataset.num_questions = 48;
        c.dataset.sampling.max_new_tokens = 64;
        // m = 6: p̂ in the band [0.3, 0.8] means 2 to 4 of 6 answers agree, which a small
        // model's scattered answers reach far more often than 2 or 3 of 4
        c.dataset.solver_samples = 6;
        c.dataset.solver_sampling.max_new_tokens = 96;
        c.challenger.optim.micro_batch_size = 2;
        c.solver.optim.micro_batch_size = 1;
        c.dataset.chunk = 8;
        // The Solver samples at temperature 0.6 where its answers become labels and where it
        // trains (not in the Challenger reward): at 1.0 SmolLM2's answers scatter, the kept
        // labels are chance 2-of-6 coincidences that fresh samples rarely match (iteration 1,
        // seed 1: 9 kept, 6 of them matched 0 of 16 times), so P(a step has a non-zero
        // advantage) was 0.31 with 2 questions × 6 and 0.65 with 5 × 6; at 0.6, 15 of the same
        // 17 questions fall in the band and P is 0.78 (2 × 6) and 0.99 (5 × 6). One step of
        // 5 questions × 6 (5 updates of one question each) then costs about the 2 × 2 × 6 of
        // before plus 6 sequences (bench/results/demo.jsonl, 2026-12-07).
        c.dataset.solver_sampling.temperature = 0.6;
        c.solver.sampling.temperature = 0.6;
        c.solver.rollout_batch_size = 5;
        c.solver.optim.global_batch_size = 1;
        c.solver.group_size = 6;
        c.solver.sampling.max_new_tokens = 96;
        c.solver.format_example = true;
        c.solver.optim.steps = 1;
        c.solver.optim.lr = 5e-6;
        c.eval.benchmarks = vec!["gsm8k".into()];
        c.eval.limit = 30;
        c.eval.max_new_tokens = 128;
        c.eval.answer = grade::AnswerRule::LastBoxed;
        c.audit.benchmarks = vec!["gsm8k".into()];
        c.audit.limit = 16;
        c.audit.samples = 6;
        c.audit.max_new_tokens = 96;
        // SmolLM2-135M rarely closes a \boxed{}: force a final answer wherever the Solver
        // answers (docs/method.md, departures)
        c.challenger.solver_force_answer = true;
        c.dataset.solver_force_answer = true;
        c.solver.force_answer = true;
        c.eval.force_answer = true;
        c
    }

    /// The tests' size, also runnable on the embedded model (`--preset tiny --model smollm2`):
    /// one GRPO step per phase, six questions, every labelled question kept. Measured on
    /// SmolLM2 (bench/results/demo.jsonl, 2026-12-07, 2 cores at load ~18): 6 and 5 questions
    /// kept, one Solver step per iteration with a non-zero advantage on 50% and 100% of its
    /// samples, 152 and 139 CPU seconds per iteration (310 before this sizing).
    /// The loop tests run it on a tiny "chain" model (`rzero::testing`).
    pub fn tiny() -> Self {
        let mut c = Self::demo();
        c.model = String::new();
        c.iterations = 2;
        c.engine.max_batch_size = 16;
        // Sized toward a minute per iteration on two cores on SmolLM2. Training dominates (the
        // Challenger's 4 sequences ~60 CPU s, the Solver's 8 ~50): one SmolLM2 sequence costs
        // seconds, so each phase gets one step of two prompts, each prompt's group in one
        // micro-batch (its prompt's forward once), and no KL term (no reference model, no
        // reference forward).
        c.challenger.rollout_batch_size = 2;
        c.challenger.optim.global_batch_size = 1;
        c.challenger.group_size = 2;
        c.challenger.optim.micro_batch_size = 2;
        c.challenger.solver_samples = 3;
        c.challenger.optim.steps = 1;
        c.challenger.optim.kl_coef = 0.0;
        // lr 1e-4: at 1e-3 SmolLM2's Challenger collapsed by its fourth update (iteration 2
        // wrote no valid question); at 1e-5 with a KL term the resumed kill test's `kl`
        // differed in its last digit (f32 rounding noise; no KL term now)
        c.challenger.optim.lr = 1e-4;
        // the Challenger keeps demo's 64 tokens: at 40, half of SmolLM2's questions were cut
        // off before `</question>`; the Solver answers in 48 tokens (at 16 every SmolLM2
        // answer was forced and none matched a label), then a forced final answer
        for s in [
            &mut c.challenger.solver_sampling,
            &mut c.dataset.solver_sampling,
            &mut c.solver.sampling,
        ] {
            s.max_new_tokens = 48;
        }
        c.dataset.num_questions = 6;
        c.dataset.solver_samples = 4;
        // one chunk: SmolLM2's decoding reads every weight per step, so batching the six
        // questions (and their 24 answers) costs far less than three chunks of two
        c.dataset.chunk = 6;
        c.dataset.min_p_hat = 0.0;
        c.dataset.max_p_hat = 1.0;
        // demo's temperature 0.6 for the labels and the Solver's rollouts
        c.dataset.solver_sampling.temperature = 0.6;
        c.solver.sampling.temperature = 0.6;
        c.solver.rollout_batch_size = 2;
        c.solver.optim.global_batch_size = 1;
        // four samples per question: two rarely differ in reward on SmolLM2
        c.solver.group_size = 4;
        c.solver.optim.micro_batch_size = 4;
        c.solver.optim.steps = 1;
        c.solver.optim.kl_coef = 0.0;
        c.solver.optim.lr = 1e-4;
        c.eval.benchmarks = vec!["gsm8k".into()];
        c.eval.limit = 2;
        c.eval.max_new_tokens = 16;
        c.audit.benchmarks = vec!["gsm8k".into()];
        c.audit.limit = 2;
        c.audit.samples = 3;
        c.audit.max_new_tokens = 48;
        c
    }
}

/// The GRPO settings of a `paper` phase (the reference's, with its batch sizes).
fn paper_optim(steps: usize, global_batch_size: usize, micro_batch_size: usize) -> Optim {
    Optim {
        steps,
        lr: 1e-6,
        weight_decay: 1e-2,
        kl_coef: 1e-2,
        max_grad_norm: 1.0,
        clip_low: 0.2,
        clip_high: 0.3,
        global_batch_size,
        ppo_epochs: 1,
        micro_batch_size,
        clip_dual: 3.0,
        lora_rank: 0,
        lora_alpha: 0.0,
        lora_targets: all_lora_targets(),
        recompute: false,
        shared_prompts: true,
        matmul_precision: model::ops::MatmulPrecision::F32,
    }
}

/// The `paper` benchmarks: the reference's math and general-domain sets, greedy.
fn paper_eval() -> EvalSection {
    EvalSection {
        benchmarks: [
            "math500",
            "gsm8k",
            "amc23",
            "minerva_math",
            "olympiadbench",
            "aime2024",
            "aime2025",
            "mmlu_pro",
            "bbeh",
        ]
        .map(String::from)
        .to_vec(),
        limit: 0,
        per_category: 0,
        max_new_tokens: 4096,
        force_answer: false,
        answer: grade::AnswerRule::FirstBoxed,
        judge_url: String::new(),
        judge_model: default_judge_model(),
        judge_api_key_env: default_judge_api_key_env(),
    }
}

/// No remote servers (the in-process engine); the client limits used when some are set.
fn paper_remote() -> RemoteSection {
    RemoteSection {
        solver_urls: Vec::new(),
        model: String::new(),
        api_key_env: String::new(),
        max_concurrency: 64,
        timeout_s: 600.0,
        retries: 3,
        reload_command: String::new(),
    }
}
