//! The commented TOML rendering that `rzero config` prints and `RUN/config.toml` holds. The
//! comment of a key is the `///` documentation of its field, read from the config's JSON
//! schema (`schemars` keeps doc comments as descriptions), so it is written once.

use std::collections::HashMap;

use serde_json::Value;

/// The documentation of every key of `T`, by dotted path (e.g. `solver.optim.lr`), each as
/// one line.
pub(crate) fn docs<T: schemars::JsonSchema>() -> HashMap<String, String> {
    let schema = schemars::schema_for!(T);
    let mut out = HashMap::new();
    collect(schema.as_value(), schema.as_value(), "", &mut out);
    out
}

fn collect(root: &Value, node: &Value, prefix: &str, out: &mut HashMap<String, String>) {
    // a field of a struct type is a reference to the type's definition
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .and_then(|p| root.pointer(&format!("/{p}")))
            .unwrap_or(node),
        None => node,
    };
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, sub) in props {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if let Some(d) = sub.get("description").and_then(Value::as_str) {
            out.insert(
                path.clone(),
                d.split_whitespace().collect::<Vec<_>>().join(" "),
            );
        }
        collect(root, sub, &path, out);
    }
}

/// `# ` lines of at most about 92 columns holding `doc`.
fn comment_lines(doc: &str, out: &mut String) {
    let mut line = String::new(); // each word with the space before it
    for w in doc.split_whitespace() {
        if !line.is_empty() && line.len() + w.len() > 90 {
            out.push_str(&format!("#{line}\n"));
            line.clear();
        }
        line = line + " " + w;
    }
    if !line.is_empty() {
        out.push_str(&format!("#{line}\n"));
    }
}

/// Writes the table `v` (at `prefix`) as TOML with the documentation of every key above it.
pub(crate) fn render(
    v: &toml::Value,
    prefix: &str,
    docs: &HashMap<String, String>,
    out: &mut String,
) {
    let Some(t) = v.as_table() else { return };
    let path = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    for (k, sub) in t.iter().filter(|(_, s)| !s.is_table()) {
        comment_lines(docs.get(&path(k)).map_or("", String::as_str), out);
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
        let path = path(k);
        out.push('\n');
        comment_lines(docs.get(&path).map_or("", String::as_str), out);
        out.push_str(&format!("[{path}]\n"));
        render(sub, &path, docs, out);
    }
}
