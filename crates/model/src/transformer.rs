//! placeholder: transformer
