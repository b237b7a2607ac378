//! placeholder: chat
