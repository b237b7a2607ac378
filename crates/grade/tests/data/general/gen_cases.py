#!/usr/bin/env python3
"""Builds the general-domain rule cases (mmlu_pro_cases.jsonl, bbeh_cases.jsonl) with the
reference's own functions, so that crates/grade/tests/general_rules.rs checks the Rust port
against the reference's verdicts.

The functions between the two "copied" markers are copied verbatim from R-Zero
(https://github.com/Chengsong-Huang/R-Zero, commit 5699329d018d79535b7910abdedf5a6eebf355fd,
evaluation/eval_mmlupro.py and evaluation/eval_bbeh.py; eval_supergpqa.py has the same
extraction). R-Zero ships no license file; the BBEH part (strip_latex .. evaluate_correctness)
is BIG-Bench Extra Hard's own evaluation code (google-deepmind/bbeh, Apache-2.0).
One change: `get_prediction` is kept as written, and `prediction_before_guess` below is the
same function with `random.choice(...)` replaced by `None` (the "before any guess" value).

Run from the repository root:  python3 crates/grade/tests/data/general/gen_cases.py
Deterministic (random.Random(21)); needs only the Python standard library.
"""
import gzip
import json
import os
import random
import re

# ---- copied from R-Zero evaluation/eval_mmlupro.py (and eval_bbeh.py) ----
def extract_last_boxed(text):
    pattern = r'\\boxed\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}'
    matches = list(re.finditer(pattern, text))
    if matches:
        return matches[-1].group(1)
    return None

def extract_last_final_answer(text):
    pattern1 = r'Final Answer:((?:[^<]|<[^<])*?)\n'
    pattern2 = r'The answer is:((?:[^<]|<[^<])*?)\n'
    matches1 = list(re.finditer(pattern1, text))
    matches2 = list(re.finditer(pattern2, text))
    if matches1:
        return matches1[-1].group(1)
    elif matches2:
        return matches2[-1].group(1)
    return None

def extract_solution(solution_str):
    if '<|im_start|>user' in solution_str:
        model_output = re.sub(r'^.*?<\|im_start\|>assistant', '<|im_start|>assistant', solution_str, flags=re.DOTALL, count=1)
    elif 'Assistant:' in solution_str:
        model_output = solution_str.split('Assistant:')[-1].strip()
    else:
        model_output = solution_str

    stop_words = ["</s>", "<|im_end|>", "<|endoftext|>"]
    for stop_word in stop_words:
        if stop_word in model_output:
            model_output = model_output.split(stop_word)[0].strip()
    
    extract_boxed_answer = extract_last_boxed(model_output)
    if extract_boxed_answer:
        return extract_boxed_answer
    else:
        return extract_last_final_answer(model_output)

def get_prediction(output):
    solution = extract_solution(output)
    if solution is None:
        return random.choice(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'])
    for option in ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J']:
        if option in solution:
            return option
    return random.choice(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'])

def strip_latex(response: str) -> str:
  if response.startswith("$") and response.endswith("$"):
    response = response[1:-1]
  if "boxed{" in response and response.endswith("}"):
    response = response[0:-1].split("boxed{")[1]
  if "text{" in response and response.endswith("}"):
    response = response[0:-1].split("text{")[1]
  if "texttt{" in response and response.endswith("}"):
    response = response[0:-1].split("texttt{")[1]
  return response


def extract_answer(sample: str) -> str:
  if sample is None:
     sample = ""
  """Extracts the final answer from the sample."""
  answer_prefixes = [
      "The answer is:",
      "The final answer is ",
      "The final answer is: ",
      "The answer is "
  ]
  answer = sample
  for answer_prefix in answer_prefixes:
    if answer_prefix in answer:
      answer = answer.split(answer_prefix)[-1].strip()
  if answer.endswith("."):
    answer = answer[:-1]
  return strip_latex(answer)


def fuzzy_match(prediction: str, reference: str) -> bool:
  """Fuzzy match function for BigBench Extra Hard."""
  if prediction == reference:
    return True

  # (a) vs a
  if len(prediction) == 3 and prediction[0] == "(" and prediction[-1] == ")":
    return prediction[1] == reference
  if len(reference) == 3 and reference[0] == "(" and reference[-1] == ")":
    return reference[1] == prediction

  # Numbers
  try:
    if float(prediction) == float(reference):
      return True
  except ValueError:
    pass

  # quote issues
  if prediction.replace("'", "") == reference.replace("'", ""):
    return True

  # Bracket issues
  if f"[{reference}]" == prediction or f"[{prediction}]" == reference:
    return True

  # Question mark issues
  if prediction.endswith("?") and prediction[:-1] == reference:
    return True

  return False


def preprocess_sample(sample: str) -> str:
    if sample is None:
        sample = ""
    prediction = extract_answer(sample.strip()).lower()
    prediction = prediction.replace(", ", ",").replace("**", "")
    prediction = prediction.split("\n")[0]
    prediction = prediction[0:-1] if prediction.endswith(".") else prediction
    return prediction


def preprocess_reference(reference: str) -> str:
    reference = reference.strip().lower()
    reference = reference.replace(", ", ",")
    return reference


def evaluate_correctness(sample: str, reference: str) -> bool:
    prediction = preprocess_sample(sample)
    reference = preprocess_reference(reference)
    return fuzzy_match(prediction, reference)
# ---- end of copied code ----


def prediction_before_guess(output):
    """get_prediction with random.choice(...) replaced by None."""
    solution = extract_solution(output)
    if solution is None:
        return None
    for option in ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J']:
        if option in solution:
            return option
    return None


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", ".."))


def load(name):
    with gzip.open(os.path.join(ROOT, "data", "benchmarks", name + ".jsonl.gz"), "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


# Hand-written MMLU-Pro responses: (what it exercises, response, answer letter).
MMLU_HAND = [
    ("boxed letter", "The force doubles, so \\boxed{C}.", "C"),
    ("boxed letter, wrong", "So the answer is \\boxed{B}.", "C"),
    ("boxed text macro", "Thus \\boxed{\\text{D}}", "D"),
    ("boxed mathrm", "\\boxed{\\mathrm{G}}", "G"),
    ("boxed with parentheses", "\\boxed{(E)}", "E"),
    ("boxed letter and option text", "\\boxed{F: 42 N}", "F"),
    ("first of A..J wins, not first in text", "\\boxed{D or B}", "B"),
    ("letter inside a word", "\\boxed{Jupiter and Earth}", "E"),
    ("The answer is inside a box", "\\boxed{The answer is J}", "J"),
    ("lower-case letter only", "\\boxed{a}", "A"),
    ("number in box, no letter", "\\boxed{42}", "A"),
    ("multiple boxes: last", "First \\boxed{A}, then corrected: \\boxed{H}.", "H"),
    ("multiple boxes: last is wrong", "\\boxed{I} ... no wait \\boxed{G}", "I"),
    ("empty box falls back to Final Answer", "\\boxed{}\nFinal Answer: B\n", "B"),
    ("empty last box ignores earlier box", "\\boxed{A} and \\boxed{}", "A"),
    ("Final Answer fallback", "Reasoning...\nFinal Answer: D\n", "D"),
    ("Final Answer without newline", "Reasoning...\nFinal Answer: D", "D"),
    ("last Final Answer", "Final Answer: A\nhmm\nFinal Answer: C\n", "C"),
    ("Final Answer beats The answer is", "The answer is: B\nFinal Answer: E\n", "E"),
    ("The answer is: fallback", "So.\nThe answer is: F\n", "F"),
    ("The answer is without colon", "The answer is (F)\n", "F"),
    ("Final Answer with html", "Final Answer: <b>C</b>\n", "C"),
    ("Final Answer with <<", "Final Answer: x<<C\n", "C"),
    ("final answer lower-case", "final answer: C\n", "C"),
    ("no answer at all", "I am not sure which option is right.", "A"),
    ("empty response", "", "B"),
    ("box nested three deep", "\\boxed{\\text{\\textbf{\\emph{A}}}}", "A"),
    ("box nested two deep", "\\boxed{\\text{\\textbf{A}}}", "A"),
    ("unclosed box", "\\boxed{C", "C"),
    ("fbox is not boxed", "\\fbox{C}", "C"),
    ("boxed with space before brace", "\\boxed {C}", "C"),
    ("stop word cuts later box", "\\boxed{A}<|im_end|>\\boxed{B}", "A"),
    ("endoftext cuts", "\\boxed{J}<|endoftext|>junk \\boxed{A}", "J"),
    ("</s> cuts", "Final Answer: I\n</s>Final Answer: A\n", "I"),
    ("chat transcript", "<|im_start|>user\nPick \\boxed{A}<|im_end|>\n<|im_start|>assistant\nIt is \\boxed{D}<|im_end|>", "D"),
    ("chat transcript, user box only", "<|im_start|>user\ne.g. \\boxed{A}<|im_end|>\n<|im_start|>assistant\nNo idea<|im_end|>", "A"),
    ("Assistant: prefix", "User: e.g. \\boxed{A}\nAssistant: I pick \\boxed{B}", "B"),
    ("Assistant: twice", "Assistant: \\boxed{C}\nAssistant: nothing", "C"),
    ("box in LaTeX display", "$$\\boxed{H}$$", "H"),
    ("bold letter", "\\boxed{**I**}", "I"),
    ("option label with text", "\\boxed{(B) 3.5 m/s}", "B"),
    ("answer inside dollar box", "$\\boxed{E}$.", "E"),
    ("unicode text", "Réponse : \\boxed{É}", "E"),
    ("many boxes", "\\boxed{A}\\boxed{B}\\boxed{C}\\boxed{D}", "D"),
    ("box with braces", "\\boxed{\\{A\\}}", "A"),
    ("tab and spaces in box", "\\boxed{ \tG }", "G"),
]

LETTERS = "ABCDEFGHIJ"

MMLU_TEMPLATES = [
    "Let me think step by step.\n...\nTherefore, the answer is \\boxed{%s}.",
    "\\boxed{(%s)}",
    "Answer: %s",
    "Final Answer: %s\n",
    "Final Answer: The correct option is %s\n",
    "The answer is: (%s)\n",
    "\\boxed{\\text{%s}}",
    "I would pick option %s but I am unsure.",
    "\\boxed{%s}<|im_end|>",
    "So \\boxed{%s} and then \\boxed{}",
    "The answer is \\boxed{%s. 12 kg}",
]


def mmlu_cases():
    rng = random.Random(21)
    data = load("mmlu_pro")
    cases = []
    for what, resp, ans in MMLU_HAND:
        cases.append((what, resp, ans))
    for k in range(120):
        item = rng.choice(data)
        n = len(item["options"])
        letter = item["answer"] if rng.random() < 0.5 else LETTERS[rng.randrange(n)]
        t = rng.choice(MMLU_TEMPLATES)
        resp = t % letter
        if rng.random() < 0.3:
            # the option text after the letter, as models often write it
            resp = resp.replace(letter, letter + ") " + item["options"][LETTERS.index(letter)][:40], 1)
        cases.append(("templated %d" % k, resp, item["answer"]))
    out = []
    for what, resp, ans in cases:
        sol = extract_solution(resp)
        pred = prediction_before_guess(resp)
        out.append({"what": what, "response": resp, "answer": ans, "solution": sol,
                    "prediction": pred, "equal": pred == ans})
    return out


# Hand-written BBEH cases: (what, response, target).
BBEH_HAND = [
    ("exact in box", "\\boxed{disproved}", "disproved"),
    ("case-insensitive", "\\boxed{Disproved}", "disproved"),
    ("reference upper-case", "\\boxed{true}", "True"),
    ("wrong", "\\boxed{proved}", "disproved"),
    ("(a) vs a", "\\boxed{(A)}", "a"),
    ("a vs (a)", "\\boxed{b}", "(B)"),
    ("(a) vs b", "\\boxed{(A)}", "b"),
    ("(ab) is not a choice", "\\boxed{(ab)}", "ab"),
    ("(a) vs (a)", "\\boxed{(c)}", "(C)"),
    ("float equal", "\\boxed{3.0}", "3"),
    ("float with exponent", "\\boxed{1e3}", "1000"),
    ("float underscores", "\\boxed{1_000}", "1000"),
    ("float sign", "\\boxed{+5}", "5"),
    ("negative numbers", "\\boxed{-2.50}", "-2.5"),
    ("thousands comma is not a float", "\\boxed{1,000}", "1000"),
    ("nan never equals", "\\boxed{nan}", "nan"),
    ("inf equals infinity", "\\boxed{inf}", "Infinity"),
    ("float different", "\\boxed{3.01}", "3"),
    ("quotes", "\\boxed{'hello'}", "hello"),
    ("quote inside", "\\boxed{don't}", "dont"),
    ("brackets around prediction", "\\boxed{[a, b, c]}", "a, b, c"),
    ("brackets around reference", "\\boxed{x,y}", "[x, y]"),
    ("question mark", "\\boxed{yes?}", "yes"),
    ("trailing period", "\\boxed{valid.}", "valid"),
    ("two trailing periods", "\\boxed{valid..}", "valid"),
    ("comma spacing", "\\boxed{red, green, blue}", "red,green,blue"),
    ("comma spacing in reference", "\\boxed{red,green}", "red, green"),
    ("bold", "\\boxed{**False**}", "false"),
    ("first line only (Final Answer)", "Final Answer: Yes\n", "yes"),
    ("The answer is: prefix inside box", "\\boxed{The answer is: 12}", "12"),
    ("The final answer is prefix", "\\boxed{The final answer is 7.}", "7"),
    ("The answer is prefix", "\\boxed{The answer is No}", "no"),
    ("several prefixes", "\\boxed{The answer is: x. The final answer is y}", "y"),
    ("dollar latex", "\\boxed{$5$}", "5"),
    ("text macro", "\\boxed{\\text{yes}}", "yes"),
    ("texttt macro", "\\boxed{\\texttt{abc}}", "abc"),
    ("boxed inside box", "\\boxed{\\boxed{4}}", "4"),
    ("no answer", "I cannot decide.", "yes"),
    ("empty response", "", "no"),
    ("empty box", "\\boxed{}", ""),
    ("Final Answer fallback with period", "blah\nFinal Answer: Valid.\n", "valid"),
    ("The answer is: fallback", "so\nThe answer is: 42\n", "42"),
    ("Final Answer without newline", "Final Answer: 42", "42"),
    ("last box wins", "\\boxed{1} then \\boxed{2}", "2"),
    ("stop word", "\\boxed{2}<|im_end|>\\boxed{3}", "2"),
    ("multi-line box content", "\\boxed{yes\nbecause}", "yes"),
    ("dyck sequence", "\\boxed{) ] }", ") ]"),
    ("word list", "\\boxed{apple banana cherry}", "apple banana cherry"),
    ("leading spaces", "\\boxed{   42   }", "42"),
    ("unicode lower", "\\boxed{ÉTÉ}", "été"),
    ("percent", "\\boxed{50%}", "50"),
    ("parenthesised number", "\\boxed{(7)}", "7"),
    ("quoted choice", "\\boxed{'(a)'}", "(a)"),
    ("brackets and quotes", "\\boxed{['x', 'y']}", "x,y"),
    ("question mark wrong", "\\boxed{no?}", "yes"),
    ("float vs text", "\\boxed{3}", "three"),
    ("hex is not a float", "\\boxed{0x10}", "16"),
    ("trailing dot number", "\\boxed{5.}", "5"),
    ("leading dot number", "\\boxed{.5}", "0.5"),
    ("1.e5 form", "\\boxed{1.e5}", "100000"),
]

BBEH_VARIANTS = [
    ("box", lambda t: "\\boxed{%s}" % t),
    ("upper", lambda t: "\\boxed{%s}" % t.upper()),
    ("paren", lambda t: "\\boxed{(%s)}" % t),
    ("brackets", lambda t: "\\boxed{[%s]}" % t),
    ("quotes", lambda t: "\\boxed{'%s'}" % t),
    ("question", lambda t: "\\boxed{%s?}" % t),
    ("period", lambda t: "\\boxed{%s.}" % t),
    ("bold", lambda t: "\\boxed{**%s**}" % t),
    ("final answer", lambda t: "Reasoning.\nFinal Answer: %s\n" % t),
    ("answer is prefix", lambda t: "\\boxed{The answer is: %s}" % t),
    ("text", lambda t: "\\boxed{\\text{%s}}" % t),
    ("float", lambda t: "\\boxed{%s.0}" % t),
    ("no space after comma", lambda t: "\\boxed{%s}" % t.replace(", ", ",")),
    ("spaced commas", lambda t: "\\boxed{%s}" % t.replace(",", ", ")),
    ("no box", lambda t: "I think it is %s" % t),
    ("wrong", lambda t: "\\boxed{%s x}" % t),
]


def bbeh_cases():
    rng = random.Random(21)
    data = load("bbeh")
    by_task = {}
    for r in data:
        by_task.setdefault(r["task"], []).append(r)
    cases = [(w, r, t) for w, r, t in BBEH_HAND]
    for task in sorted(by_task):
        for r in rng.sample(by_task[task], 3):
            name, f = rng.choice(BBEH_VARIANTS)
            cases.append(("%s: %s" % (task, name), f(r["target"]), r["target"]))
    out = []
    for what, resp, target in cases:
        sol = extract_solution(resp)
        out.append({"what": what, "response": resp, "answer": target, "solution": sol,
                    "prediction": preprocess_sample(sol), "reference": preprocess_reference(target),
                    "equal": evaluate_correctness(sol, target)})
    return out


def write(name, rows):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(name, len(rows), "cases,", sum(r["equal"] for r in rows), "equal")


if __name__ == "__main__":
    write("mmlu_pro_cases.jsonl", mmlu_cases())
    write("bbeh_cases.jsonl", bbeh_cases())
