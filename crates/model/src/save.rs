//! placeholder: save
