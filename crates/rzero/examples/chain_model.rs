//! Writes the tests' tiny "chain" model (`rzero::testing::write_chain_model`) to a folder, so
//! scripts can run the loop on it: `cargo run --release -p rzero --example chain_model -- DIR`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: chain_model DIR");
        std::process::exit(2);
    };
    if let Err(e) = rzero::testing::write_chain_model(std::path::Path::new(&dir)) {
        eprintln!(
            "error: writing the chain model to {}: {e}",
            dir.to_string_lossy()
        );
        std::process::exit(1);
    }
}
