//! `rzero grade --extract` and `rzero extract --extract`: the extraction modes on the
//! command line (default boxed, as the training reward; `fallbacks`; `free` text).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn rzero(args: &[&str], input: &str) -> (bool, Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rzero"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning rzero");
    // A refused command may exit before reading its input: a broken pipe is not a failure.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
    {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing stdin: {e}"
        );
    }
    let out = child.wait_with_output().expect("waiting for rzero");
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON output line"))
        .collect();
    (
        out.status.success(),
        rows,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const INPUT: &str = concat!(
    r#"{"response": "So the answer is $\\frac{1}{2}$.", "gold": "0.5"}"#,
    "\n",
    r#"{"response": "In total it costs $1,000.", "gold": "1000"}"#,
    "\n",
    r#"{"response": "Thus $\\boxed{7}$.", "gold": "7"}"#,
    "\n",
);

fn column(rows: &[Value], key: &str) -> Vec<Value> {
    rows.iter().map(|r| r[key].clone()).collect()
}

#[test]
fn grade_modes() {
    let (ok, rows, err) = rzero(&["grade"], INPUT);
    assert!(ok, "{err}");
    assert_eq!(
        column(&rows, "equal"),
        [false, false, true].map(Value::Bool).to_vec()
    );
    assert_eq!(rows[0]["extracted"], Value::Null);

    let (ok, rows, err) = rzero(&["grade", "--fallbacks"], INPUT);
    assert!(ok, "{err}");
    assert_eq!(
        column(&rows, "equal"),
        [true, false, true].map(Value::Bool).to_vec()
    );

    let (ok, rows, err) = rzero(&["grade", "--extract", "free"], INPUT);
    assert!(ok, "{err}");
    assert_eq!(
        column(&rows, "equal"),
        [true, true, true].map(Value::Bool).to_vec()
    );
    assert_eq!(rows[0]["extracted"], r"\frac{1}{2}");
    assert_eq!(rows[1]["extracted"], "1000");
}

#[test]
fn unknown_mode_is_refused() {
    let (ok, rows, err) = rzero(&["grade", "--extract", "loose"], INPUT);
    assert!(!ok);
    assert!(rows.is_empty());
    assert!(err.contains("boxed, fallbacks or free"), "{err}");
}

#[test]
fn extract_modes() {
    let (ok, rows, err) = rzero(&["extract"], INPUT);
    assert!(ok, "{err}");
    assert_eq!(
        column(&rows, "boxed"),
        [Value::Null, Value::Null, Value::from("7")].to_vec()
    );
    let (ok, rows, err) = rzero(&["extract", "--extract", "free"], INPUT);
    assert!(ok, "{err}");
    assert_eq!(
        column(&rows, "extracted"),
        [r"\frac{1}{2}", "1000", "7"].map(Value::from).to_vec()
    );
}
