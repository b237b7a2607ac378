//! No cycles between the top-level modules of a library crate (ARCHITECTURE.md): module `a`
//! depends on `b` when its source (tests and comments left out) names `crate::b`, directly or
//! in a `use crate::{..}` group. The cycles that remain today are listed: fixing one fails
//! the test until the list is updated, and a new cycle fails it too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles known today, as sorted module lists (none: a new one fails the test until broken
/// or listed here with its reason).
const KNOWN: &[(&str, &[&str])] = &[];

/// Source without line comments and without a trailing `#[cfg(test)] mod tests { .. }`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named after `crate::` in `src`.
fn referenced(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in src.match_indices("crate::") {
        let rest = &src[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::{c, d}, e}`: the names at depth 0 of the group.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// Module -> the sibling top-level modules it names.
fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut todo = vec![src_dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let top = |p: &Path| -> String {
        let rel = p.strip_prefix(src_dir).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| top(p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let m = top(p);
        if m == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        let deps = g.entry(m.clone()).or_default();
        for r in referenced(&code(&text)) {
            if r != m && r != "lib" && modules.contains(&r) {
                deps.insert(r);
            }
        }
    }
    g
}

/// The strongly connected components with more than one module, each sorted.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for d in g.get(&m).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut out = BTreeSet::new();
    for (m, r) in &reach {
        let comp: Vec<String> = reach
            .iter()
            .filter(|(o, ro)| r.contains(o.as_str()) && ro.contains(m.as_str()))
            .map(|(o, _)| (*o).clone())
            .collect();
        if comp.len() > 1 {
            out.insert(comp);
        }
    }
    out
}

#[test]
fn the_reference_scanner_sees_grouped_and_plain_paths() {
    let src = code(
        "use crate::{config::Config, error::{Error, Result}, Weights};\n\
         fn f() { crate::hub::resolve(x); } // crate::ignored\n\
         #[cfg(test)]\nmod tests { use crate::tested; }\n",
    );
    assert_eq!(
        referenced(&src),
        ["Weights", "config", "error", "hub"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn library_crates_have_no_module_cycles_but_the_known_ones() {
    let root = testdata::repo_root().join("crates");
    for krate in [
        "model", "remote", "eval", "grade", "reward", "engine", "train", "rzero",
    ] {
        let g = module_graph(&root.join(krate).join("src"));
        assert!(g.len() > 1, "{krate}: no modules found");
        let found = cycles(&g);
        let known: BTreeSet<Vec<String>> = KNOWN
            .iter()
            .filter(|(k, _)| *k == krate)
            .map(|(_, c)| c.iter().map(|s| s.to_string()).collect())
            .collect();
        assert_eq!(
            found, known,
            "{krate}: module cycles (left: found, right: known; update KNOWN when one is broken)"
        );
    }
}
