//! placeholder: load
