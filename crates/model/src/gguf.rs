//! placeholder: gguf
