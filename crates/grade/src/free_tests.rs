//! Tests of `free.rs`.

use super::*;

fn ex(s: &str) -> Option<String> {
    extract_free(s)
}

#[test]
fn numbers_and_units() {
    assert_eq!(
        ex("the number is not 10 which is 1,000.99€").as_deref(),
        Some("1000.99")
    );
    assert_eq!(ex("so it's 1,000.99m²").as_deref(), Some("1000.99"));
    assert_eq!(ex("Soucis : 2,74 $ a..").as_deref(), Some("2.74"));
    assert_eq!(ex("It costs $12.50 in total.").as_deref(), Some("12.50"));
    assert_eq!(ex("It grows by 100%.").as_deref(), Some("100%"));
    assert_eq!(ex("AZYUK2A").as_deref(), None);
    assert_eq!(ex("The probability is 2/3.").as_deref(), Some("2/3"));
    assert_eq!(
        ex("a total of 7 425 000 people").as_deref(),
        Some("7425000")
    );
}

#[test]
fn phrases() {
    assert_eq!(
        ex("Final Answer: The largest $n$ is 34. I hope it is correct.").as_deref(),
        Some("34")
    );
    assert_eq!(
        ex("So the answer is $x = 3$, since 4 is too big.").as_deref(),
        Some("x = 3")
    );
    assert_eq!(ex("Answer \\[ \n 9 \n \\]").as_deref(), Some("9"));
    assert_eq!(
        ex("The final answer is $12$ and $13$. I hope it is correct.").as_deref(),
        Some("12, 13")
    );
    assert_eq!(
        ex("Final Answer: Jane started 3 hours ago. I hope it is correct.").as_deref(),
        Some("3")
    );
}

#[test]
fn math_and_chains() {
    assert_eq!(
        ex("so the volume is $5 \\times 6 \\times 4 = 120$.").as_deref(),
        Some("120")
    );
    assert_eq!(ex("Thus $s = a = h+r$.").as_deref(), Some("h+r"));
    assert_eq!(ex("The line is $y = 2x+1$.").as_deref(), Some("y = 2x+1"));
    assert_eq!(
        ex("We get $$\\frac{1}{2}$$").as_deref(),
        Some("\\frac{1}{2}")
    );
    assert_eq!(ex("roots $1$ and $2$").as_deref(), Some("1, 2"));
    assert_eq!(ex("it is $28$ percent").as_deref(), Some("28\\%"));
    assert_eq!(ex("x <|im_start|>user 5").as_deref(), None);
}

#[test]
fn boxed_runs() {
    assert_eq!(
        ex(r"\boxed{1} and \boxed{2} and \boxed{3}").as_deref(),
        Some("1, 2, 3")
    );
    assert_eq!(
        ex(r"$$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$$").as_deref(),
        Some("(2, 2), (6, 2)")
    );
    assert_eq!(ex(r"first \boxed{1}. Then \boxed{2}").as_deref(), Some("2"));
}
