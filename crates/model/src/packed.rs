//! placeholder: packed
