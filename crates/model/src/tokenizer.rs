//! placeholder: tokenizer
