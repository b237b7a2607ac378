//! The two roles' prompts, exactly as the reference builds them.
//!
//! The Challenger's system prompt and user message are the reference's
//! (`question_generate.py`, `verl/utils/dataset.py` `questioner_format`). With
//! `challenger.format_example` a one-shot example of the output format is appended to the
//! system prompt (an rzero addition for small models; off in the `paper` preset). The
//! Solver's system prompt is the reference's `solver_format`; with `solver.format_example` a
//! worked example (one question and its answer in the format the Solver reward checks) is
//! shown as an earlier user/assistant exchange (also an rzero addition; off in `paper`).
//! Models without a chat template get the reference's plain fallback `"system: …\nuser: …"`.

/// The Challenger's system prompt (reference text).
pub const CHALLENGER_SYSTEM: &str = "You are an expert competition-math problem setter.\n\
FIRST, in your private scratch-pad, think step-by-step to design a brand-new, non-trivial problem. \
The problem could come from any field of mathematics, including but not limited to algebra, geometry, number theory, combinatorics, prealgebra, probability, statistics, and calculus. \
Aim for a difficulty such that fewer than 30 % of advanced high-school students could solve it. \
Avoid re-using textbook clichés or famous contest problems.\n\
THEN, without revealing any of your private thoughts, output **exactly** the following two blocks:\n\n\
<question>\n\
{The full problem statement on one or more lines}\n\
</question>\n\n\
\\boxed{final_answer}\n\n\
Do NOT output anything else—no explanations, no extra markup.";

/// The Challenger's user message (reference text).
pub const CHALLENGER_USER: &str =
    "Generate one new, challenging reasoning question now. Remember to format the output exactly as instructed.";

/// Example answers in the exact output format, shown as earlier assistant turns when
/// `challenger.format_example` is on (a few-shot conversation: small instruct models copy
/// the format of their own previous turns far more reliably than a system-prompt spec).
pub const CHALLENGER_FORMAT_EXAMPLES: &[&str] = &[
    "<question>\nA rectangle has a perimeter of 30 and a length twice its width. What is its area?\n</question>\n\n\\boxed{50}",
    "<question>\nTom has 12 apples and gives away 5. How many apples does he have left?\n</question>\n\n\\boxed{7}",
];

/// The Solver's system prompt (reference text), defined once in `eval` (training and
/// evaluation ask the same way).
pub use eval::SOLVER_SYSTEM_PROMPT as SOLVER_SYSTEM;

/// The Solver's worked example (question, answer), shown as an earlier user turn and
/// assistant turn when `solver.format_example` is on. The answer has the shape the Solver
/// reward checks (`<think>…</think> … \boxed{…}`), so a small model that copies it earns the
/// format reward and, above all, writes an extractable `\boxed{}` answer.
pub const SOLVER_FORMAT_EXAMPLE: (&str, &str) = (
    "A shop sells pencils at 3 dollars each. Mia buys 4 pencils and pays with a 20-dollar bill. How much change does she get?",
    "<think>\n4 pencils cost 4 * 3 = 12 dollars. The change is 20 - 12 = 8 dollars.\n</think>\nThe answer is \\boxed{8}.",
);

/// Renders a conversation with the model's chat template (generation prompt added), or the
/// reference's plain fallback (`"role: content"` lines, then `"assistant: "`) when the model
/// has none.
fn render_messages(
    template: Option<&model::ChatTemplate>,
    msgs: &[model::ChatMessage],
) -> model::Result<String> {
    match template {
        Some(t) => t.render(msgs, true),
        None => {
            let mut s = String::new();
            for m in msgs {
                s.push_str(&format!("{}: {}\n", m.role, m.content));
            }
            s.push_str("assistant: ");
            Ok(s)
        }
    }
}

/// Renders a system + user conversation with the model's chat template (generation prompt
/// added), or the reference's plain fallback when the model has none.
pub fn render(
    template: Option<&model::ChatTemplate>,
    system: &str,
    user: &str,
) -> model::Result<String> {
    match template {
        Some(t) => t.render(
            &[
                model::ChatMessage::system(system),
                model::ChatMessage::user(user),
            ],
            true,
        ),
        None => Ok(format!("system: {system}\nuser: {user}")),
    }
}

/// The Challenger prompt text: the reference's system + user messages, optionally preceded
/// by the few-shot examples, then `response_prefix` (the start of the assistant's answer,
/// e.g. `<question>\n`; empty in the reference).
pub fn challenger_prompt(
    template: Option<&model::ChatTemplate>,
    format_example: bool,
    response_prefix: &str,
) -> model::Result<String> {
    let mut text = if format_example {
        let mut msgs = vec![model::ChatMessage::system(CHALLENGER_SYSTEM)];
        for ex in CHALLENGER_FORMAT_EXAMPLES {
            msgs.push(model::ChatMessage::user(CHALLENGER_USER));
            msgs.push(model::ChatMessage::assistant(*ex));
        }
        msgs.push(model::ChatMessage::user(CHALLENGER_USER));
        render_messages(template, &msgs)?
    } else {
        render(template, CHALLENGER_SYSTEM, CHALLENGER_USER)?
    };
    text.push_str(response_prefix);
    Ok(text)
}

/// The Solver prompt text for one question: the reference's system prompt and the question,
/// with `format_example` preceded by [`SOLVER_FORMAT_EXAMPLE`] as an earlier exchange.
pub fn solver_prompt(
    template: Option<&model::ChatTemplate>,
    question: &str,
    format_example: bool,
) -> model::Result<String> {
    if !format_example {
        return render(template, SOLVER_SYSTEM, question);
    }
    let (ex_q, ex_a) = SOLVER_FORMAT_EXAMPLE;
    render_messages(
        template,
        &[
            model::ChatMessage::system(SOLVER_SYSTEM),
            model::ChatMessage::user(ex_q),
            model::ChatMessage::assistant(ex_a),
            model::ChatMessage::user(question),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fallback_matches_reference() {
        let p = solver_prompt(None, "What is 1+1?", false).unwrap();
        assert_eq!(
            p,
            "system: Please reason step by step, and put your final answer within \\boxed{}.\nuser: What is 1+1?"
        );
    }

    #[test]
    fn solver_format_example_turns_only_when_on() {
        let t = model::ChatTemplate::chatml();
        let (ex_q, ex_a) = SOLVER_FORMAT_EXAMPLE;
        let off = solver_prompt(Some(&t), "What is 1+1?", false).unwrap();
        assert!(!off.contains(ex_q) && !off.contains("pencils"));
        assert_eq!(off.matches("<|im_start|>user").count(), 1);
        assert_eq!(off.matches("<|im_start|>assistant").count(), 1);
        let on = solver_prompt(Some(&t), "What is 1+1?", true).unwrap();
        // system, the example's user turn and assistant turn, then the question
        let expected = format!(
            "<|im_start|>system\n{SOLVER_SYSTEM}<|im_end|>\n<|im_start|>user\n{ex_q}<|im_end|>\n\
             <|im_start|>assistant\n{ex_a}<|im_end|>\n<|im_start|>user\nWhat is 1+1?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        assert_eq!(on, expected);
        // the plain fallback carries the same turns
        let plain = solver_prompt(None, "What is 1+1?", true).unwrap();
        assert!(plain.starts_with(&format!(
            "system: {SOLVER_SYSTEM}\nuser: {ex_q}\nassistant: {ex_a}\n"
        )));
        assert!(plain.ends_with("user: What is 1+1?\nassistant: "));
        // the example answer has the shape the Solver reward checks, and its box is extracted
        assert!(reward::solver::solver_format_ok(ex_a));
        assert_eq!(grade::extract_boxed(ex_a).as_deref(), Some("8"));
    }

    #[test]
    fn chatml_rendering_and_format_example() {
        let t = model::ChatTemplate::chatml();
        let p = challenger_prompt(Some(&t), false, "").unwrap();
        assert!(
            p.starts_with("<|im_start|>system\nYou are an expert competition-math problem setter.")
        );
        assert!(p.ends_with("<|im_start|>assistant\n"));
        assert!(!p.contains("Tom has 12 apples"));
        let p2 = challenger_prompt(Some(&t), true, "<question>\n").unwrap();
        assert!(p2.contains("<|im_start|>assistant\n<question>\nTom has 12 apples"));
        assert!(p2.ends_with("<|im_start|>assistant\n<question>\n"));
        assert_eq!(p2.matches("<|im_start|>user").count(), 3);
        // the examples satisfy the Challenger format the reward checks
        for ex in CHALLENGER_FORMAT_EXAMPLES {
            assert!(reward::challenger::parse_challenger_output(ex).is_some());
        }
    }
}
