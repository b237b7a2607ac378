//! placeholder: hub
